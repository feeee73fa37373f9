-- Report runs and their partial results per chunk. A chunk's row is written once its
-- chunk is finished (an upsert, so a re-run chunk changes nothing); the report's row holds
-- the merged result.
CREATE TABLE reports (
    report_id     text PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES agents (id),
    start_day     date NOT NULL,
    end_day       date NOT NULL,
    status        text NOT NULL DEFAULT 'running',
    workflow_id   text NOT NULL,
    chunks_total  integer NOT NULL DEFAULT 0,
    total_leads   bigint,
    average_score numeric(8, 2),
    top_source    text,
    file          text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

CREATE TABLE report_chunks (
    report_id         text NOT NULL REFERENCES reports (report_id),
    chunk_index       integer NOT NULL,
    start_at          timestamptz NOT NULL,
    end_at            timestamptz NOT NULL,
    rows_read         bigint NOT NULL,
    pages             integer NOT NULL,
    -- [[day, property, source, leads, score_sum], ...]: a few hundred cells, never rows.
    cells             jsonb NOT NULL,
    attempt           integer NOT NULL,
    resumed_from_rows bigint NOT NULL DEFAULT 0,
    finished_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, chunk_index)
);

-- The index for the chunks' keyset pagination is 0030's, built without blocking writes.
