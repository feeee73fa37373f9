-- The dead-letter queue: one row per failed job run (workflow id + run id), and what
-- became of it. A repeated signal for the same run finds its row and adds nothing.
CREATE TABLE dead_letters (
    id                  text PRIMARY KEY,
    kind                text NOT NULL,
    workflow_id         text NOT NULL,
    run_id              text NOT NULL,
    workflow_type       text NOT NULL,
    input               jsonb NOT NULL,
    error_type          text NOT NULL,
    error_message       text NOT NULL,
    attempts            integer NOT NULL,
    failed_at           timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'dead'
                        CHECK (status IN ('dead', 'redriven', 'discarded')),
    redrive_workflow_id text,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    UNIQUE (workflow_id, run_id)
);
CREATE INDEX dead_letters_kind_status ON dead_letters (kind, status);
CREATE INDEX dead_letters_failed_at ON dead_letters (failed_at DESC, id);
