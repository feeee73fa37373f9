-- Count one hit on bucket $1 in the current window of $2 seconds (windows are aligned to the
-- epoch, so every API process agrees on them); the counter restarts when a new window
-- begins. Returns the hits so far in this window and the seconds until it ends. The row
-- lock serialises concurrent hits on one bucket, across processes.
-- name: rate_limit_hit
INSERT INTO api_rate_limits AS r (bucket, window_end, hits)
VALUES ($1, to_timestamp((floor(extract(epoch FROM now())::float8 / $2::float8) + 1) * $2::float8), 1)
ON CONFLICT (bucket) DO UPDATE SET
    hits = CASE WHEN EXCLUDED.window_end > r.window_end THEN 1 ELSE r.hits + 1 END,
    window_end = GREATEST(r.window_end, EXCLUDED.window_end)
RETURNING hits, extract(epoch FROM window_end - now())::float8 AS seconds_left;

-- Counters whose window ended, $1 at a time.
-- name: prune_rate_limits
DELETE FROM api_rate_limits
WHERE bucket IN (SELECT bucket FROM api_rate_limits WHERE window_end < now() LIMIT $1);
