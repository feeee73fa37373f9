-- The API's abuse limits, shared by every API process: one counter per bucket (a client
-- address or a recipient, hashed) for the fixed window that ends at `window_end`.
CREATE TABLE api_rate_limits (
    bucket     text PRIMARY KEY,
    window_end timestamptz NOT NULL,
    hits       integer NOT NULL
);
-- What the prune reads: the counters whose window has ended.
CREATE INDEX api_rate_limits_window_end ON api_rate_limits (window_end);
