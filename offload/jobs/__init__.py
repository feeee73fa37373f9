"""The client layer: start jobs, write and relay the outbox, act on dead letters and schedules.

The CLI, the API (`api/`) and the worker (`workers/`) all start and manage jobs
through these modules; bad input raises the domain errors of `offload.jobs.errors`, which the
CLI maps to exit code 2 and the API to 422.
"""
