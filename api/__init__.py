"""The HTTP API: leads in through a transactional outbox, reports, health and metrics."""
