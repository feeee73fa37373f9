"""Email jobs: check an `EmailJob` as the activity would, and queue it as a `SendEmailWorkflow`."""

from __future__ import annotations

import jinja2
from temporalio.client import Client, WorkflowHandle

from offload import mail
from offload.jobs.errors import JobInputError
from offload.jobs.start import start_job
from offload.models import EmailJob, EmailResult
from offload.settings import Settings
from workflows.email import SendEmailWorkflow


def validate_email_job(job: EmailJob) -> None:
    """Check what the activity would refuse, before anything starts.

    Raises:
        JobInputError: an invalid address (`to`), an unknown template (`template`), or data
            the template lacks (`data`).
    """
    try:
        mail.check_address(job.to)
    except mail.InvalidAddressError as err:
        raise JobInputError(str(err), field="to") from None
    try:
        mail.render(job.template, job.data)
    except mail.UnknownTemplateError as err:
        raise JobInputError(str(err), field="template") from None
    except jinja2.TemplateError as err:
        raise JobInputError(
            f"does not fit template {job.template!r}: {err}", field="data"
        ) from None


async def enqueue_email(
    client: Client, settings: Settings, job: EmailJob
) -> WorkflowHandle[SendEmailWorkflow, EmailResult]:
    """Queue `job`; the same idempotency key queued twice is one workflow and one email."""
    return await start_job(
        client, settings, SendEmailWorkflow.run, job, workflow_id=job.workflow_id
    )
