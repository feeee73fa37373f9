-- The trace context (W3C `traceparent`) of the request that queued an outbox row, so the
-- relay's start of the job joins the request's trace. NULL when tracing is off.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;
