-- name: pause_kind
INSERT INTO paused_kinds (kind, reason)
VALUES ($1, $2)
ON CONFLICT (kind) DO NOTHING
RETURNING paused_at;

-- name: resume_kind
DELETE FROM paused_kinds
WHERE kind = $1
RETURNING paused_at;

-- name: list_paused_kinds
SELECT kind, reason, paused_at
FROM paused_kinds
ORDER BY kind;

-- name: kind_is_paused
SELECT EXISTS (SELECT 1 FROM paused_kinds WHERE kind = $1);

-- name: find_paused_kind
SELECT kind, reason, paused_at
FROM paused_kinds
WHERE kind = $1;
