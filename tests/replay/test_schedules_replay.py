"""Recorded histories of the scheduled workflows replay against today's code.

`send-digest-emails-refused` (one recipient refused with 550) was recorded before digests
went per recipient. Re-record (tests/replay/histories/*.json) only for a
change that is meant to break replay, and put such a change behind `workflow.patched`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.maintenance import SendDigestEmailsWorkflow, SyncLeadScoresWorkflow

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize(
    "name", ["send-digest-emails", "send-digest-emails-refused", "sync-lead-scores"]
)
async def test_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"{name}-replay", (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(
        workflows=[SendDigestEmailsWorkflow, SyncLeadScoresWorkflow],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(history)
