"""GenerateReportWorkflow replays its recorded history: its command sequence has not changed."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.email import SendEmailWorkflow
from workflows.reports import GenerateReportWorkflow

HISTORY = Path(__file__).parent / "histories" / "report.json"


async def test_the_recorded_report_history_replays() -> None:
    replayer = Replayer(
        workflows=[GenerateReportWorkflow, SendEmailWorkflow],
        data_converter=pydantic_data_converter,
    )
    history = WorkflowHistory.from_json("report-recorded", HISTORY.read_text())
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
