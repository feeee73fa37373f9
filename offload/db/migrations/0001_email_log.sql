-- One row per email sent, keyed by its idempotency key: a retry finds it and sends nothing.
CREATE TABLE email_log (
    idempotency_key text PRIMARY KEY,
    message_id      text NOT NULL,
    recipient       text NOT NULL,
    template        text NOT NULL,
    workflow_id     text,
    sent_at         timestamptz NOT NULL DEFAULT now()
);
