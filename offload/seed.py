"""Realistic demo data, fast: agents and a year of their leads, loaded with COPY.

The same `seed` and `end` always give the same rows, so the demo, the tests and the
benchmarks can count on them. Seeding again adds leads; agents are reused by email.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from offload.db import Pool

FIRST_NAMES = (
    "Ada Grace Alan Edsger Barbara Donald Frances Ken Margaret John Radia Tim Katherine "
    "Dennis Hedy Linus Sophie Niklaus Jean Claude"
).split()
LAST_NAMES = (
    "Lovelace Hopper Turing Dijkstra Liskov Knuth Allen Thompson Hamilton Backus Perlman "
    "Berners-Lee Johnson Ritchie Lamarr Torvalds Wilson Wirth Sammet Shannon"
).split()
STREETS = (
    "Harbour View,Mill Lane,Station Road,Church Street,Orchard Close,Park Avenue,"
    "Victoria Road,Kings Walk,Riverside,The Green,Chapel Row,High Street"
).split(",")
# Sources with how often leads come from them.
SOURCES = {"website": 40, "zillow": 20, "referral": 15, "open-house": 10, "facebook": 10, "sign": 5}
BATCH = 20_000


@dataclass(frozen=True)
class SeedResult:
    agents: int
    leads: int
    first_day: date
    last_day: date


def agent_email(number: int) -> str:
    return f"agent{number}@example.com"


def lead_rows(
    count: int, agent_ids: list[int], rng: random.Random, end: date
) -> Iterator[tuple[object, ...]]:
    """`count` leads over the 365 days before `end`, each agent with its own few properties.

    One random draw per varying field, from tables built once: a million rows stay cheap.
    """
    properties = {
        agent: [f"{rng.randint(1, 199)} {rng.choice(STREETS)}" for _ in range(rng.randint(3, 8))]
        for agent in agent_ids
    }
    names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    sources = [source for source, weight in SOURCES.items() for _ in range(weight)]
    scores = [min(100, max(0, int(rng.gauss(55, 18)))) for _ in range(1000)]
    window_end = datetime.combine(end, time.min, tzinfo=UTC)
    # Whole seconds and a microsecond part that keeps timestamps apart.
    offsets = [timedelta(seconds=s) for s in range(0, 86_400, 1)]
    days = [window_end - timedelta(days=d + 1) for d in range(365)]
    choice, randrange = rng.choice, rng.randrange
    for i in range(count):
        agent = agent_ids[i % len(agent_ids)]
        created = choice(days) + choice(offsets) + timedelta(microseconds=i % 1_000_000)
        yield (
            agent,
            choice(names),
            f"lead{i}@example.com",
            f"+44 7{(i * 7919 + 12345) % 10**9:09d}",
            choice(properties[agent]),
            choice(sources),
            scores[randrange(1000)],
            created,
            created,
        )


async def seed(pool: Pool, *, leads: int, agents: int, seed: int = 0, end: date) -> SeedResult:
    """Add `agents` agents (reused when they exist) and `leads` leads spread over them."""
    rng = random.Random(seed)
    async with pool.acquire() as conn:
        agent_ids = []
        for number in range(1, agents + 1):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            agent_id = await conn.fetchval(
                "INSERT INTO agents (name, email, digest_subscribed) VALUES ($1, $2, true)"
                " ON CONFLICT (email) DO UPDATE SET digest_subscribed = true RETURNING id",
                name,
                agent_email(number),
            )
            agent_ids.append(int(agent_id))
        rows = lead_rows(leads, agent_ids, rng, end)
        columns = [
            "agent_id", "name", "email", "phone", "property", "source", "score",
            "created_at", "updated_at",
        ]  # fmt: skip
        remaining = leads
        while remaining > 0:
            batch = [next(rows) for _ in range(min(BATCH, remaining))]
            await conn.copy_records_to_table("leads", records=batch, columns=columns)
            remaining -= len(batch)
        # Fresh statistics and visibility map: reports read leads with index-only scans.
        await conn.execute("VACUUM ANALYZE leads")
    return SeedResult(
        agents=agents,
        leads=leads,
        first_day=end - timedelta(days=365),
        last_day=end - timedelta(days=1),
    )
