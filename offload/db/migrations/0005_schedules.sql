-- What the scheduled maintenance jobs record so that a retried, caught-up or repeated run
-- does its work once: which lead was scored for which window, which agent got which day's digest.
CREATE TABLE lead_score_log (
    lead_id    bigint NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    window_end timestamptz NOT NULL,
    score      integer NOT NULL,
    scored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lead_id, window_end)
);

CREATE TABLE digest_log (
    agent_id        bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    day             date NOT NULL,
    -- Leads created before this instant were in this digest; the next one starts here.
    until           timestamptz NOT NULL,
    leads           integer NOT NULL,
    idempotency_key text NOT NULL,
    message_id      text NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, day)
);
CREATE INDEX digest_log_agent_until ON digest_log (agent_id, until DESC);
