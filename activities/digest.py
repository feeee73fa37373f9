"""Daily digest activities: who gets one, and a batch of digests over one SMTP connection."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import EmailActivities, classify_smtp_error, permanent, send_composed
from offload import mail
from offload.db import QUERIES, Pool
from offload.models import (
    AgentList,
    DigestBatch,
    DigestBatchProgress,
    DigestBatchResult,
    DigestPlan,
    RecipientFailure,
)
from offload.settings import Settings

log = logging.getLogger(__name__)

TEMPLATE = "daily-digest"
# "Service not available, closing transmission channel": the connection is done for.
CLOSING = 421
# Sent digests are logged (and the heartbeat moves) this many at a time: a crash re-sends at
# most this many, each with the same Message-ID as before.
LOG_EVERY = 50


def about_recipient(err: Exception) -> bool:
    """Whether the server answered about this message (the connection is still good).

    A refused recipient or a refused message leaves the SMTP conversation usable for the
    next one, and so does an address the server cannot take (no SMTPUTF8: nothing was
    sent); a lost connection or a 421 (the server closing it) does not.
    """
    if isinstance(err, aiosmtplib.SMTPNotSupported):
        return True
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        return all(refusal.code != CLOSING for refusal in err.recipients)
    return isinstance(err, aiosmtplib.SMTPResponseException) and err.code != CLOSING


def recipient_failure(agent_id: int, failure: Exception) -> RecipientFailure:
    if isinstance(failure, ApplicationError):
        return RecipientFailure(
            agent_id=agent_id,
            error_type=failure.type or "ApplicationError",
            message=failure.message,
            retryable=False,
        )
    return RecipientFailure(
        agent_id=agent_id, error_type=type(failure).__name__, message=str(failure), retryable=True
    )


def read_progress(details: Sequence[Any]) -> DigestBatchProgress:
    """The last heartbeat of an earlier attempt; older releases sent `[index, sent, refused]`."""
    if not details:
        return DigestBatchProgress()
    if isinstance(details[0], list):
        index, sent, refused = (int(v) for v in details[0])
        return DigestBatchProgress(after_index=index, sent=sent, refused=refused)
    return DigestBatchProgress.model_validate(details[0])


def digest_key(plan: DigestPlan, agent_id: int) -> str:
    """The idempotency key of one agent's digest of one day."""
    return f"digest-{plan.day.isoformat()}-agent-{agent_id}"


class DigestActivities:
    """Digest activities; the worker builds one with its settings and pool."""

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.email = EmailActivities(settings, pool)

    @activity.defn
    async def plan_digest(self, plan: DigestPlan) -> AgentList:
        """The subscribed agents that have not had the day's digest yet."""
        rows = await self.pool.fetch(QUERIES.digest_recipients, plan.day, plan.only_agent_ids)
        return AgentList(agent_ids=[r["id"] for r in rows])

    def build(
        self, plan: DigestPlan, agent: Any, leads: list[dict[str, Any]], sent_at: datetime
    ) -> tuple[str, mail.ComposedEmail]:
        key = digest_key(plan, agent["id"])
        composed = mail.compose(
            TEMPLATE,
            {"name": agent["name"], "day": plan.day.isoformat(), "leads": leads},
            to=agent["email"],
            idempotency_key=key,
            mail_from=self.settings.mail_from,
            date=sent_at,
        )
        return key, composed

    @activity.defn
    async def send_digest_batch(self, batch: DigestBatch) -> DigestBatchResult:
        """Send the day's digest to each agent of the batch over one SMTP connection.

        An agent already in `digest_log` for the day is skipped, so a retried or repeated
        run sends nobody a second digest. A recipient the server defers (4xx) or refuses
        (5xx) is returned in `failures` and the batch goes on with the next one, so one
        full mailbox holds back nobody; with `batch.raise_failures` (a retry of that one
        recipient) the failure raises instead. A lost connection raises: the heartbeat
        carries the index of the last recipient sent and logged, and a retry resumes after it.
        """
        plan = batch.plan
        progress = read_progress(activity.info().heartbeat_details)
        result = DigestBatchResult(
            sent=progress.sent, refused=progress.refused, failures=progress.failures
        )
        resume_after = progress.after_index
        todo = batch.agent_ids[resume_after + 1 :]
        agents = {r["id"]: r for r in await self.pool.fetch(QUERIES.digest_agents, todo, plan.day)}
        default_since = plan.until - timedelta(days=1)
        since = [agents[i]["since"] or default_since for i in agents]
        leads: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in await self.pool.fetch(QUERIES.digest_leads, list(agents), since, plan.until):
            leads[row["agent_id"]].append(
                {
                    "name": row["name"],
                    "property": row["property"],
                    "source": row["source"],
                    "score": row["score"],
                }
            )
        pending: list[tuple[int, str, str, str, int, datetime]] = []

        async def record(index: int) -> None:
            if pending:
                workflow_id = activity.info().workflow_id
                await self.pool.execute(
                    QUERIES.insert_digest_log,
                    [p[0] for p in pending],
                    [plan.day] * len(pending),
                    [plan.until] * len(pending),
                    [p[4] for p in pending],
                    [p[1] for p in pending],
                    [p[2] for p in pending],
                    [p[5] for p in pending],
                )
                await self.pool.execute(
                    QUERIES.insert_email_logs,
                    [p[1] for p in pending],
                    [p[2] for p in pending],
                    [p[3] for p in pending],
                    [TEMPLATE] * len(pending),
                    [workflow_id] * len(pending),
                    [p[5] for p in pending],
                )
                pending.clear()
            activity.heartbeat(
                DigestBatchProgress(
                    after_index=index,
                    sent=result.sent,
                    refused=result.refused,
                    failures=result.failures,
                )
            )

        async with self.email.smtp_client() as smtp:
            for offset, agent_id in enumerate(todo):
                index = resume_after + 1 + offset
                agent = agents.get(agent_id)
                if agent is None:
                    result.already_sent += 1
                    continue
                if not leads.get(agent_id):
                    result.no_leads += 1
                    continue
                sent_at = datetime.now(UTC)
                try:
                    key, composed = self.build(plan, agent, leads[agent_id], sent_at)
                except mail.InvalidAddressError as err:
                    refusal = permanent("InvalidAddress", str(err))
                    if batch.raise_failures:
                        raise refusal from None
                    result.refused += 1
                    result.failures.append(recipient_failure(agent_id, refusal))
                    continue
                except jinja2.TemplateError as err:
                    raise ApplicationError(
                        f"template {TEMPLATE!r}: {err}", type="TemplateError", non_retryable=True
                    ) from None
                try:
                    await send_composed(smtp, composed)
                except (aiosmtplib.SMTPException, OSError) as err:
                    failure = classify_smtp_error(err)
                    if batch.raise_failures or not about_recipient(err):
                        await record(index - 1)
                        raise failure from err
                    # One deferred or refused address must not hold back the rest of the
                    # batch: the workflow retries or dead-letters that recipient alone.
                    if isinstance(failure, ApplicationError):
                        result.refused += 1
                    result.failures.append(recipient_failure(agent_id, failure))
                    continue
                result.sent += 1
                pending.append(
                    (agent_id, key, composed.message_id, composed.to, len(leads[agent_id]), sent_at)
                )
                if len(pending) >= LOG_EVERY:
                    await record(index)
            await record(len(batch.agent_ids) - 1)
        log.info("digest %s: sent %d", plan.day, result.sent)
        return result
