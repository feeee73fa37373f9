-- name: leads_updated_in_window
SELECT id, name, phone, property, source, created_at
FROM leads
WHERE updated_at >= $1 AND updated_at < $2 AND id > $3
ORDER BY id
LIMIT $4;

-- name: insert_lead_scores
-- Only leads not yet scored for this window come back, so a rerun scores nobody twice.
INSERT INTO lead_score_log (lead_id, window_end, score)
SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::integer[])
ON CONFLICT (lead_id, window_end) DO NOTHING
RETURNING lead_id, score;

-- name: set_lead_scores
-- A score is derived data: updated_at stays, or scoring would put the lead in the next window.
UPDATE leads AS l
SET score = s.score
FROM unnest($1::bigint[], $2::integer[]) AS s (id, score)
WHERE l.id = s.id;

-- name: delete_expired_sessions
DELETE FROM sessions
WHERE id IN (
    SELECT id FROM sessions
    WHERE expires_at < $1
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
);

-- name: list_agent_ids
SELECT id FROM agents ORDER BY id;

-- name: upsert_market_data
INSERT INTO market_data (area, day, median_price, listings, days_on_market, updated_at)
SELECT a.area, $1::date, a.median_price, a.listings, a.days_on_market, now()
FROM unnest($2::text[], $3::numeric[], $4::integer[], $5::numeric[])
    AS a (area, median_price, listings, days_on_market)
ON CONFLICT (area, day) DO UPDATE
SET median_price = EXCLUDED.median_price,
    listings = EXCLUDED.listings,
    days_on_market = EXCLUDED.days_on_market,
    updated_at = EXCLUDED.updated_at;
