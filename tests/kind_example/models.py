"""The kind's input and result (in Offload they go in `offload/models.py`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from offload.models import RetryConfig


class PingJob(BaseModel):
    """Ping one host and record the answer; the same `ping_id` is one job."""

    ping_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @property
    def workflow_id(self) -> str:
        return f"ping-{self.ping_id}"


class PingResult(BaseModel):
    host: str
    answer: str
