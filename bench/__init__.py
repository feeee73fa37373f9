"""Benchmarks that print figures; never part of `make test`."""
