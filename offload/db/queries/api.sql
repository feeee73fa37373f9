-- name: insert_lead
INSERT INTO leads (name, email, phone, property, source, agent_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id;

-- The row's id, or NULL if a row with this workflow id is already queued; with a channel $5,
-- the relays that listen on it are woken in the same round trip. PostgreSQL sends the
-- notification when the transaction commits, and not at all if it rolls back.
-- name: insert_outbox
WITH queued AS (
    INSERT INTO outbox (kind, workflow_id, payload, trace_context)
    VALUES ($1, $2, $3::jsonb, $4::jsonb)
    ON CONFLICT (workflow_id) DO NOTHING
    RETURNING id
)
SELECT
    (SELECT id FROM queued) AS id,
    CASE WHEN $5::text IS NOT NULL THEN pg_notify($5, '') END AS woken;

-- name: find_outbox_id
SELECT id FROM outbox WHERE workflow_id = $1;

-- name: mark_outbox_failed
UPDATE outbox SET attempts = attempts + 1, last_error = $2
WHERE id = $1;

-- Rows older than $1 seconds are the API's no more: it crashed or Temporal was down.
-- SKIP LOCKED lets several relays share the table without taking the same row; a row that
-- failed goes behind the others, so one bad row never holds the rest back.
-- name: claim_outbox
SELECT id, kind, workflow_id, payload::text AS payload, trace_context::text AS trace_context
FROM outbox
WHERE started_at IS NULL AND created_at < now() - make_interval(secs => $1)
ORDER BY attempts, id
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: count_pending_outbox
SELECT count(*) FROM outbox WHERE started_at IS NULL;

-- name: claim_idempotency_key
INSERT INTO idempotency_keys (key, route, request_hash, status, body)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (key) DO NOTHING
RETURNING key;

-- name: find_idempotency_key
SELECT route, request_hash, status, body::text AS body
FROM idempotency_keys
WHERE key = $1;

-- name: insert_request_log
INSERT INTO request_log (method, path, status, duration_ms)
VALUES ($1, $2, $3, $4);

-- name: insert_pageview
INSERT INTO pageviews (path, source, lead_id)
VALUES ($1, $2, $3);

-- name: check_database
SELECT 1;

-- The rows of the workflow ids $1 that were started, in one statement: the API's marks
-- (api.started_marks) and a relay batch's; a row marked meanwhile is left as it is.
-- name: mark_outbox_started_by_workflow_ids
UPDATE outbox SET started_at = now(), attempts = attempts + 1, last_error = NULL
WHERE workflow_id = ANY($1::text[]) AND started_at IS NULL;

-- Started rows older than $1 hours, $2 at a time (the relay's housekeeping).
-- name: prune_started_outbox
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE started_at IS NOT NULL AND created_at < now() - make_interval(hours => $1)
    LIMIT $2
);

-- name: prune_idempotency_keys
DELETE FROM idempotency_keys
WHERE key IN (
    SELECT key FROM idempotency_keys
    WHERE created_at < now() - make_interval(hours => $1)
    LIMIT $2
);
