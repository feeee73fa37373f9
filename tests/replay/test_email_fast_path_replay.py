"""SendEmailWorkflow histories recorded before the fast path replay against today's code.

`send-email-activity-v1.json` (sent) and `send-email-activity-dead-lettered-v1.json` (refused
with 550, dead-lettered) were recorded from real runs of the code that scheduled
`send_email` on the email queue first; `workflow.patched` keeps them on that path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.email import SendEmailWorkflow

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize("name", ["send-email-activity-v1", "send-email-activity-dead-lettered-v1"])
async def test_an_email_history_from_before_the_fast_path_replays(name: str) -> None:
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(workflows=[SendEmailWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
