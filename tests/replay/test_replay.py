"""Every recorded history in tests/replay/histories/ replays against today's workflow code.

A workflow change that alters the command sequence of a recorded run fails here: put it
behind `workflow.patched(...)`. Histories are recorded from real runs by
tests/replay/record_histories.py; keep the old recordings when you add new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.main import workflows

WORKFLOWS = workflows()

HISTORIES = Path(__file__).parent / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
TEXTS = {p: p.read_text() for p in RECORDED}


def workflow_type(path: Path) -> str:
    started = json.loads(TEXTS[path])["events"][0]
    return str(started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=workflows(), data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(path.stem, TEXTS[path])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_every_workflow_type_has_a_recorded_history() -> None:
    recorded = {workflow_type(p) for p in RECORDED}
    missing = sorted(w.__name__ for w in workflows() if w.__name__ not in recorded)
    assert not missing, f"no recorded history of {missing}: see record_histories.py"


def test_recorded_failure_paths_and_continue_as_new() -> None:
    """The paths most likely to break: `run_job`'s dead-lettering, and continue-as-new."""
    ends = {p.stem: json.loads(TEXTS[p])["events"][-1]["eventType"] for p in RECORDED}
    for name in (
        "send-email-dead-lettered",
        "send-email-dead-lettered-v2",
        "send-email-dead-lettered-v3",
    ):
        assert ends[name] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    for name in ("report-dead-lettered", "report-dead-lettered-v2"):
        assert ends[name] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    for name in (
        "dead-letters-continued-as-new",
        "report-continued-as-new",
        "report-continued-as-new-v2",
    ):
        assert ends[name] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
