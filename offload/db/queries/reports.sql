-- name: find_agent
SELECT id, name, email FROM agents WHERE id = $1;

-- name: count_report_leads
SELECT count(*) FROM leads WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3;

-- name: upsert_report_started
INSERT INTO reports (report_id, user_id, start_day, end_day, workflow_id, chunks_total)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (report_id) DO UPDATE SET chunks_total = EXCLUDED.chunks_total;

-- A page of one chunk, aggregated where the rows are: the page's cells, each carrying the
-- page's row count and its last (created_at, id), the cursor of the next page.
-- name: report_page
WITH page AS (
    SELECT id, created_at, property, source, score
    FROM leads
    WHERE agent_id = $1
      AND created_at >= $2
      AND (created_at, id) > ($2, $3)
      AND created_at < $4
    ORDER BY created_at, id
    LIMIT $5
),
last AS (
    SELECT created_at, id, (SELECT count(*) FROM page) AS n
    FROM page ORDER BY created_at DESC, id DESC LIMIT 1
)
SELECT (p.created_at AT TIME ZONE 'UTC')::date AS day, p.property, p.source,
       count(*) AS leads, sum(p.score) AS score_sum,
       last.created_at AS last_created_at, last.id AS last_id, last.n AS page_rows
FROM page p CROSS JOIN last
GROUP BY 1, 2, 3, last.created_at, last.id, last.n;

-- name: upsert_report_chunk
INSERT INTO report_chunks (report_id, chunk_index, start_at, end_at, rows_read, pages, cells,
                           attempt, resumed_from_rows)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (report_id, chunk_index) DO UPDATE SET
    rows_read = EXCLUDED.rows_read, pages = EXCLUDED.pages, cells = EXCLUDED.cells,
    attempt = EXCLUDED.attempt, resumed_from_rows = EXCLUDED.resumed_from_rows,
    finished_at = now();

-- name: report_chunk_cells
SELECT chunk_index, cells FROM report_chunks WHERE report_id = $1 ORDER BY chunk_index;

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
