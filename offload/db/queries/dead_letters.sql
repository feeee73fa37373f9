-- name: insert_dead_letters
INSERT INTO dead_letters (
    id, kind, workflow_id, run_id, workflow_type, input,
    error_type, error_message, attempts, failed_at
)
SELECT e.id, e.kind, e.workflow_id, e.run_id, e.workflow_type, e.input::jsonb,
       e.error_type, e.error_message, e.attempts, e.failed_at
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::integer[], $10::timestamptz[]
) AS e (id, kind, workflow_id, run_id, workflow_type, input,
        error_type, error_message, attempts, failed_at)
ON CONFLICT DO NOTHING
RETURNING id, kind, status;

-- name: find_dead_letter_refs
SELECT id, kind, status FROM dead_letters WHERE id = ANY($1::text[]);

-- name: find_dead_letter_refs_of_kind
-- A page of the dead entries of kind $1 (and error type $2), in (failed_at, id) order after
-- ($3, $4), none failed after $5, at most $6 (NULL: all).
SELECT id, kind, status, failed_at, workflow_id, workflow_type, error_type
FROM dead_letters
WHERE kind = $1 AND status = 'dead'
  AND ($2::text IS NULL OR error_type = $2)
  AND ($3::timestamptz IS NULL OR (failed_at, id) > ($3::timestamptz, $4::text))
  AND ($5::timestamptz IS NULL OR failed_at <= $5::timestamptz)
ORDER BY failed_at, id
LIMIT $6;

-- name: find_dead_letters_to_redrive
-- Only entries still dead: a retried redrive skips those it already started.
SELECT * FROM dead_letters
WHERE id = ANY($1::text[]) AND status = 'dead'
ORDER BY failed_at, id;

-- name: find_redriven_of
SELECT id, redrive_workflow_id FROM dead_letters
WHERE id = ANY($1::text[]) AND status = 'redriven'
ORDER BY failed_at, id;

-- name: mark_dead_letter_redriven
UPDATE dead_letters
SET status = 'redriven', redrive_workflow_id = $2, resolved_at = now()
WHERE id = $1 AND status = 'dead';

-- name: mark_dead_letters_discarded
UPDATE dead_letters
SET status = 'discarded', resolved_at = now()
WHERE id = ANY($1::text[]) AND status = 'dead'
RETURNING id;

-- name: list_dead_letters
SELECT id, kind, status, workflow_id, workflow_type, error_type, error_message, attempts,
       failed_at, recorded_at, redrive_workflow_id
FROM dead_letters
WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR status = $2)
ORDER BY failed_at DESC, id;

-- name: find_dead_letter
SELECT * FROM dead_letters WHERE id = $1;
