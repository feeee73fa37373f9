"""SendEmailWorkflow replays a history recorded before its job activities' retry policy
named `EncryptionKeyError` non-retryable: a dead-lettered email (550, then the entry)."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.email import SendEmailWorkflow

HISTORY = Path(__file__).parent / "histories" / "email-dead-lettered.json"


async def test_the_recorded_dead_lettered_email_replays() -> None:
    text = HISTORY.read_text()
    scheduled = [
        event["activityTaskScheduledEventAttributes"]
        for event in json.loads(text)["events"]
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]
    assert [s["activityType"]["name"] for s in scheduled] == ["send_email", "record_dead_letter"]
    # Recorded by the code before the change: its policy names no non-retryable type.
    assert "nonRetryableErrorTypes" not in scheduled[0]["retryPolicy"]

    replayer = Replayer(workflows=[SendEmailWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(WorkflowHistory.from_json("email-recorded", text))
    assert result.replay_failure is None
