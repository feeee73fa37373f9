"""SendEmailWorkflow replays histories recorded before pausing and cancel-waits-for-send.

`email-sent.json` is a job that sent its message; `email-cancelled-retrying.json` one
cancelled while its activity waited to retry (then cancellation did not wait for a send).
Both were recorded from a real run on the dev server of the code before issue 15.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.email import SendEmailWorkflow

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize("name", ["email-sent", "email-cancelled-retrying"])
async def test_a_recorded_email_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[SendEmailWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
