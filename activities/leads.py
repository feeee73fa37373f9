"""Lead activities of the scheduled jobs: rescore leads per window, list the agents."""

from __future__ import annotations

from temporalio import activity

from offload.db import QUERIES, Pool
from offload.models import AgentList, LeadScoreBatch, LeadScoreResult
from offload.scoring import LeadFacts, score_lead


class LeadActivities:
    """Activities on leads and agents; the worker builds one with its pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @activity.defn
    async def score_leads(self, batch: LeadScoreBatch) -> LeadScoreResult:
        """Score every lead updated in the window, a batch per transaction.

        It heartbeats its cursor (the last lead id done) and resumes from it on retry; a lead
        already scored for this window is not scored again (`lead_score_log`).
        """
        window = batch.window
        details = activity.info().heartbeat_details
        cursor, examined, scored = (int(v) for v in details[0]) if details else (0, 0, 0)
        while True:
            rows = await self.pool.fetch(
                QUERIES.leads_updated_in_window, window.start, window.end, cursor, batch.batch_size
            )
            if not rows:
                break
            ids = [r["id"] for r in rows]
            scores = [
                score_lead(
                    LeadFacts(
                        source=r["source"],
                        created_at=r["created_at"],
                        phone=r["phone"],
                        property=r["property"],
                        name=r["name"],
                    ),
                    window.end,
                )
                for r in rows
            ]
            async with self.pool.acquire() as conn, conn.transaction():
                fresh = await conn.fetch(
                    QUERIES.insert_lead_scores, ids, [window.end] * len(ids), scores
                )
                await conn.execute(
                    QUERIES.set_lead_scores,
                    [r["lead_id"] for r in fresh],
                    [r["score"] for r in fresh],
                )
            cursor = ids[-1]
            examined += len(rows)
            scored += len(fresh)
            activity.heartbeat((cursor, examined, scored))
        return LeadScoreResult(window=window, examined=examined, scored=scored)

    @activity.defn
    async def list_agent_ids(self) -> AgentList:
        """Every agent's id, in order."""
        rows = await self.pool.fetch(QUERIES.list_agent_ids)
        return AgentList(agent_ids=[r["id"] for r in rows])
