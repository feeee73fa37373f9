-- name: digest_recipients
-- Subscribed agents without a digest for the day yet (only those of $2 when it is set).
SELECT a.id
FROM agents a
WHERE a.digest_subscribed
  AND ($2::bigint[] IS NULL OR a.id = ANY($2::bigint[]))
  AND NOT EXISTS (SELECT 1 FROM digest_log d WHERE d.agent_id = a.id AND d.day = $1)
ORDER BY a.id;

-- name: digest_agents
-- The batch's agents not yet sent the day's digest, with where their last digest ended.
SELECT a.id, a.name, a.email,
       (SELECT max(d.until) FROM digest_log d WHERE d.agent_id = a.id) AS since
FROM agents a
WHERE a.id = ANY($1::bigint[])
  AND a.digest_subscribed
  AND NOT EXISTS (SELECT 1 FROM digest_log d WHERE d.agent_id = a.id AND d.day = $2)
ORDER BY a.id;

-- name: digest_leads
-- New leads of the batch's agents: created after the agent's last digest (or in the last
-- day when there was none) and before the end of the digest's day.
SELECT l.agent_id, l.name, l.property, l.source, l.score
FROM leads l
JOIN unnest($1::bigint[], $2::timestamptz[]) AS a (id, since) ON l.agent_id = a.id
WHERE l.created_at >= a.since AND l.created_at < $3
ORDER BY l.agent_id, l.created_at, l.id;

-- name: insert_digest_log
INSERT INTO digest_log (agent_id, day, until, leads, idempotency_key, message_id, sent_at)
SELECT * FROM unnest(
    $1::bigint[], $2::date[], $3::timestamptz[], $4::integer[], $5::text[], $6::text[],
    $7::timestamptz[]
)
ON CONFLICT (agent_id, day) DO NOTHING;

-- name: insert_email_logs
INSERT INTO email_log (idempotency_key, message_id, recipient, template, workflow_id, sent_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
ON CONFLICT (idempotency_key) DO NOTHING;
