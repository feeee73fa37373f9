"""A job kind's declaration: what it reads from its workflow class, and a wrong one refused."""

from __future__ import annotations

import pytest
from temporalio import workflow

from offload import kinds
from offload.kinds import JobKind
from offload.models import EmailJob


@workflow.defn
class NamelessWorkflow:
    @workflow.run
    async def run(self, job: EmailJob) -> None:
        pass


@workflow.defn
class NoModelWorkflow:
    KIND = "no-model"

    @workflow.run
    async def run(self, count: int) -> None:
        pass


def no_activities(settings: object, pool: object) -> kinds.Activities:
    return {}


def test_each_kind_takes_its_name_and_input_from_its_workflow() -> None:
    assert [(kind.name, kind.input.__name__) for kind in kinds.KINDS[:3]] == [
        ("email", "EmailJob"),
        ("report", "ReportJob"),
        ("sync-lead-scores", "ScheduledRun"),
    ]
    assert kinds.named("report").workflow_type == "GenerateReportWorkflow"


def test_a_workflow_without_a_kind_name_or_an_input_model_is_refused_where_declared() -> None:
    with pytest.raises(TypeError, match="NamelessWorkflow declares no KIND"):
        JobKind(workflow=NamelessWorkflow, activities=no_activities)
    with pytest.raises(TypeError, match=r"NoModelWorkflow.run does not take one pydantic model"):
        JobKind(workflow=NoModelWorkflow, activities=no_activities)
