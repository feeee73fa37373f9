"""`offload send-email`: queue one templated email as a `SendEmailWorkflow`."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from offload import mail
from offload.jobs.email import enqueue_email, validate_email_job
from offload.jobs.start import workflow_ui_url
from offload.models import IDEMPOTENCY_KEY_MAX_LENGTH, IDEMPOTENCY_KEY_PATTERN, EmailJob
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError, print_json


def idempotency_key(text: str) -> str:
    """`--idempotency-key`: visible ASCII (no space, CR or LF), at most 200 characters."""
    if not text or len(text) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters")
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, text):
        # The value itself is not echoed: it may hold anything, a line break included.
        raise argparse.ArgumentTypeError("only visible ASCII characters: no space, CR or LF")
    return text


def parse_data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CommandError(f"--data is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise CommandError('--data must be a JSON object, like \'{"name": "Ada"}\'')
    return data


async def send_email_command(args: argparse.Namespace, settings: Settings) -> int:
    job = EmailJob(
        to=args.to,
        template=args.template,
        data=parse_data(args.data),
        idempotency_key=args.idempotency_key or "",
        retry=settings.retry,
    )
    validate_email_job(job)
    client = await connect(settings)
    handle = await enqueue_email(client, settings, job)
    print(f"queued {handle.id}")
    print(f"  {workflow_ui_url(settings, handle.id)}")
    if args.wait:
        result = await handle.result()
        print_json(result.model_dump(mode="json"))
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "send-email",
        help="queue a templated email",
        description="Queue one email as a SendEmailWorkflow and print its workflow id.",
    )
    parser.add_argument("--to", required=True, help="recipient address")
    parser.add_argument(
        "--template", required=True, help=f"template name ({', '.join(mail.template_names())})"
    )
    parser.add_argument("--data", default="{}", help="template variables as a JSON object")
    parser.add_argument(
        "--idempotency-key",
        type=idempotency_key,
        help="the email's key (visible ASCII); derived from the content when omitted",
    )
    parser.add_argument("--wait", action="store_true", help="wait for the result and print it")
    parser.set_defaults(handler=send_email_command)
