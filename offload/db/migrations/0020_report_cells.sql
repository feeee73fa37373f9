-- A report chunk's partial result lives here page by page, not in its activity's heartbeat
-- (which carries the cursor and small counters only), so a chunk of any number of distinct
-- cells finishes. A page's cells and the cursor after it are written in one transaction:
-- a retried attempt resumes from the stored cursor and counts no page twice.
CREATE TABLE report_chunk_progress (
    report_id        text NOT NULL REFERENCES reports (report_id),
    chunk_index      integer NOT NULL,
    after_created_at timestamptz NOT NULL,
    after_id         bigint NOT NULL,
    rows_read        bigint NOT NULL,
    pages            integer NOT NULL,
    PRIMARY KEY (report_id, chunk_index)
);

CREATE TABLE report_cells (
    report_id   text NOT NULL,
    chunk_index integer NOT NULL,
    day         date NOT NULL,
    property    text NOT NULL,
    source      text NOT NULL,
    leads       bigint NOT NULL,
    score_sum   bigint NOT NULL,
    PRIMARY KEY (report_id, chunk_index, day, property, source),
    FOREIGN KEY (report_id, chunk_index) REFERENCES report_chunk_progress
);

-- `report_chunks.cells` now stays `[]` for new chunks; chunks stored before this migration
-- keep theirs there, and the report merges both.
