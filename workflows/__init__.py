"""Workflows: deterministic orchestration, one module per job kind."""
