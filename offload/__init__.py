"""Offload: durable background jobs for Python on Temporal."""
