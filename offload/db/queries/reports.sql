-- name: find_agent
SELECT id, name, email FROM agents WHERE id = $1;

-- name: estimate_report_leads
-- The planner's estimate of an agent's leads in a range, from the table's statistics: no
-- scan (a count of a million leads takes a tenth of a second), enough to size the chunks,
-- which count their rows exactly.
EXPLAIN (FORMAT JSON)
SELECT 1 FROM leads WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3;

-- name: claim_report
-- A report's parameters recorded under its id when it is queued; when the id is taken, the
-- existing report's parameters instead (no row: a concurrent claim not yet visible, ask again).
WITH claimed AS (
    INSERT INTO reports (report_id, user_id, start_day, end_day, workflow_id)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (report_id) DO NOTHING
    RETURNING user_id, start_day, end_day
)
SELECT user_id, start_day, end_day, true AS fresh FROM claimed
UNION ALL
SELECT user_id, start_day, end_day, false FROM reports WHERE report_id = $1;

-- name: unclaim_report
-- A fresh claim whose job could not be started (Temporal down): not planned, so removable.
DELETE FROM reports WHERE report_id = $1 AND chunks_total = 0;

-- name: upsert_report_started
INSERT INTO reports (report_id, user_id, start_day, end_day, workflow_id, chunks_total)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (report_id) DO UPDATE SET chunks_total = EXCLUDED.chunks_total;

-- A page of one chunk, aggregated where the rows are and added to the chunk's cells; it
-- returns the page's row count and its last (created_at, id), the cursor of the next page
-- (no row when the page is empty). Run under the chunk's progress row lock.
-- name: aggregate_report_page
WITH page AS (
    SELECT id, created_at, property, source, score
    FROM leads
    WHERE agent_id = $3
      AND created_at >= $4
      AND (created_at, id) > ($4, $5)
      AND created_at < $6
    ORDER BY created_at, id
    LIMIT $7
),
added AS (
    INSERT INTO report_cells (report_id, chunk_index, day, property, source, leads, score_sum)
    SELECT $1, $2, (created_at AT TIME ZONE 'UTC')::date, property, source, count(*), sum(score)
    FROM page
    GROUP BY 3, 4, 5
    ON CONFLICT (report_id, chunk_index, day, property, source) DO UPDATE SET
        leads = report_cells.leads + EXCLUDED.leads,
        score_sum = report_cells.score_sum + EXCLUDED.score_sum
)
SELECT created_at AS last_created_at, id AS last_id, (SELECT count(*) FROM page) AS page_rows
FROM page
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- name: upsert_report_chunk
INSERT INTO report_chunks (report_id, chunk_index, start_at, end_at, rows_read, pages, cells,
                           attempt, resumed_from_rows)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (report_id, chunk_index) DO UPDATE SET
    rows_read = EXCLUDED.rows_read, pages = EXCLUDED.pages, cells = EXCLUDED.cells,
    attempt = EXCLUDED.attempt, resumed_from_rows = EXCLUDED.resumed_from_rows,
    finished_at = now();

-- name: count_report_chunks
SELECT count(*) FROM report_chunks WHERE report_id = $1;

-- name: finish_report
UPDATE reports
SET status = 'done', total_leads = $2, average_score = $3, top_source = $4, file = $5,
    finished_at = now()
WHERE report_id = $1;

-- The whole report as one aggregate: what the chunked report must equal, and its baseline.
-- name: report_by_sql
WITH cells AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, property, source,
           count(*) AS n, sum(score) AS s
    FROM leads
    WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1, 2, 3
)
SELECT day, property, sum(n)::bigint AS leads, round(sum(s)::numeric / sum(n), 2) AS average_score,
       (array_agg(source ORDER BY n DESC, source))[1] AS top_source
FROM cells
GROUP BY day, property
ORDER BY day, property;

-- name: begin_report_chunk
-- A chunk's stored progress, created at its start when it has none.
WITH created AS (
    INSERT INTO report_chunk_progress (report_id, chunk_index, after_created_at, after_id,
                                       rows_read, pages)
    VALUES ($1, $2, $3, 0, 0, 0)
    ON CONFLICT (report_id, chunk_index) DO NOTHING
    RETURNING after_created_at, after_id, rows_read, pages
)
SELECT * FROM created
UNION ALL
SELECT after_created_at, after_id, rows_read, pages
FROM report_chunk_progress WHERE report_id = $1 AND chunk_index = $2;

-- name: lock_report_chunk
SELECT after_created_at, after_id, rows_read, pages
FROM report_chunk_progress WHERE report_id = $1 AND chunk_index = $2
FOR UPDATE;

-- name: advance_report_chunk
UPDATE report_chunk_progress
SET after_created_at = $3, after_id = $4, rows_read = rows_read + $5, pages = pages + 1
WHERE report_id = $1 AND chunk_index = $2
RETURNING after_created_at, after_id, rows_read, pages;

-- name: report_lines
-- The report's lines per day and property, then its total line: from the cells of all its
-- chunks (`report_cells`, and the JSON cells of chunks stored by older releases), merged
-- where they are, so the report is one streamed result whatever its size.
WITH stored AS (
    SELECT day, property, source, leads, score_sum FROM report_cells WHERE report_id = $1
    UNION ALL
    SELECT (c ->> 0)::date, c ->> 1, c ->> 2, (c ->> 3)::bigint, (c ->> 4)::bigint
    FROM report_chunks rc, jsonb_array_elements(rc.cells) c
    WHERE rc.report_id = $1
),
cells AS (
    SELECT day, property, source, sum(leads) AS n, sum(score_sum) AS s
    FROM stored GROUP BY day, property, source
),
lines AS (
    SELECT day::text AS day, property, sum(n)::bigint AS leads,
           round(sum(s) / sum(n), 2) AS average_score,
           (array_agg(source ORDER BY n DESC, source))[1] AS top_source
    FROM cells GROUP BY day, property
),
total AS (
    SELECT 'total' AS day, '' AS property, coalesce(sum(n), 0)::bigint AS leads,
           coalesce(round(sum(s) / nullif(sum(n), 0), 2), 0.00) AS average_score,
           coalesce((SELECT source FROM cells GROUP BY source ORDER BY sum(n) DESC, source
                     LIMIT 1), '') AS top_source
    FROM cells
)
SELECT 0 AS part, * FROM lines
UNION ALL
SELECT 1, * FROM total
ORDER BY part, day, property;
