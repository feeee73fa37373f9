-- name: find_email_log
SELECT message_id, recipient, sent_at
FROM email_log
WHERE idempotency_key = $1;

-- name: insert_email_log
INSERT INTO email_log (idempotency_key, message_id, recipient, template, workflow_id, sent_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (idempotency_key) DO NOTHING;
