"""The worker process: which queues it polls, with what tuning, and how it shuts down."""
