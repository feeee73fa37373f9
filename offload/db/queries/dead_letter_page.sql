-- The operator page of the dead-letter queue (`GET /admin/dead-letters`).

-- Entries with their input, newest failure first, optionally of one kind and status;
-- at most $3 of them, so a flood of failures keeps the page small.
-- name: dead_letter_page_entries
SELECT id, kind, status, workflow_id, run_id, workflow_type, input::text AS input,
       error_type, error_message, attempts, failed_at, redrive_workflow_id, resolved_at
FROM dead_letters
WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2)
ORDER BY failed_at DESC, id
LIMIT $3;

-- Every group of entries (kind, error type) and its counts, however many entries it has.
-- name: dead_letter_page_groups
SELECT kind, error_type,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       count(*) AS total,
       min(failed_at) AS first_failed_at,
       max(failed_at) AS last_failed_at
FROM dead_letters
WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2)
GROUP BY kind, error_type
ORDER BY max(failed_at) DESC, kind, error_type;
