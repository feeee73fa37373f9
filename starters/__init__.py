"""Starters: the `offload` CLI and the functions that start, query and manage workflows."""
