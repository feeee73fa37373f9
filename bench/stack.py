"""The services a benchmark or the chaos run needs, each on a free port and in its own process.

Nothing here touches the fixed ports of `offload dev`, so a run can go on beside it, and
beside other runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from offload.db import create_pool, migrate
from offload.dev.stack import EmbeddedPostgres, SmtpSink, TemporalDevServer, stop_process
from offload.net import free_port
from offload.polling import wait_until
from offload.settings import Settings


class SinkProcess:
    """`python -m bench.sink` on a fixed port and mail folder: stopped and started at will."""

    def __init__(self, maildir: Path, port: int) -> None:
        self.maildir = maildir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def _launch(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "bench.sink", "--port", str(self.port)]
        command += ["--maildir", str(self.maildir)]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)

    async def start(self, startup_seconds: float = 20) -> None:
        process = self.process = self._launch()

        async def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError("the SMTP sink exited")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_until(listening, within=startup_seconds, what="the SMTP sink")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def messages(self) -> list[Any]:
        """Every message the sink saved, in any of its lives."""
        return SmtpSink(self.maildir, port=self.port).messages()

    def count(self) -> int:
        return sum(1 for _ in self.maildir.glob("*.eml"))


class Stack:
    """A Temporal dev server, PostgreSQL (migrated) and an SMTP sink.

    With `temporal_file` the server keeps its state in a SQLite file and survives a
    restart; without, in memory, which is what the benchmarks measure against. With
    `durable=False` PostgreSQL does not wait for the disk on commit (`fsync=off`, as the
    tests run it): for a benchmark of CPU on a machine whose disk stalls commits.
    """

    def __init__(self, root: Path, *, temporal_file: bool = False, durable: bool = True) -> None:
        self.root = root
        self.temporal = TemporalDevServer(
            port=free_port(),
            ui_port=None,
            db_file=root / "temporal.sqlite" if temporal_file else None,
            log_file=root / "temporal.log",
        )
        self.postgres = EmbeddedPostgres(root / "postgres", port=free_port(), durable=durable)
        self.sink = SinkProcess(root / "mail", free_port())

    def settings(self, task_queue_prefix: str = "", **more: Any) -> Settings:
        """Settings that point at this stack; `more` sets other variables."""
        return Settings(
            _env_file=None,
            TEMPORAL_ADDRESS=self.temporal.address,
            DATABASE_URL=self.postgres.dsn(),
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=self.sink.port,
            OFFLOAD_DATA_DIR=self.root / "data",
            OFFLOAD_TASK_QUEUE_PREFIX=task_queue_prefix,
            **more,
        )

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sink.maildir.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(self.temporal.start(), self.postgres.start(), self.sink.start())
        pool = await create_pool(self.settings(), max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()

    async def stop(self) -> None:
        self.sink.stop()
        self.postgres.stop()
        await self.temporal.stop()

    def pids(self) -> dict[str, int]:
        """The process id of each running service of the stack, by name."""
        pids = {
            "temporal": self.temporal.pid,
            "postgres": self.postgres.process.pid if self.postgres.process else None,
            "sink": self.sink.process.pid if self.sink.process else None,
        }
        return {name: pid for name, pid in pids.items() if pid is not None}

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by this process (its own threads: the services are its
        children) and by each service of the stack."""
        return cpu_seconds({"this process": os.getpid(), **self.pids()}, alone="this process")

    async def sql(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.postgres.dsn())
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()


@asynccontextmanager
async def running_stack(
    root: Path, *, temporal_file: bool = False, durable: bool = True
) -> AsyncIterator[Stack]:
    """A started `Stack` under `root`, stopped at the end of the block."""
    stack = Stack(root, temporal_file=temporal_file, durable=durable)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


def load_note() -> str:
    """How busy the machine was: benchmark figures mean little without it."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def split_cores() -> tuple[set[int], set[int]] | None:
    """This process's CPUs in two halves (the first the smaller), or None with fewer than 2."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def pin(pid: int, cpus: set[int], *, descendants: bool = True) -> None:
    """Run process `pid` and its descendants (unless `descendants` is False) on `cpus` only:
    every thread each has now, so that the threads and processes they start later inherit it
    (a PostgreSQL backend forked by its postmaster, a thread of the Temporal server)."""
    for process in {pid, *(_descendants(pid) if descendants else ())}:
        with contextlib.suppress(FileNotFoundError):
            for task in Path(f"/proc/{process}/task").iterdir():
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(task.name), cpus)


def _stat_fields(stat: Path) -> list[str]:
    """A /proc/PID/stat's fields after `pid (comm)`: state, ppid, ... (comm may hold spaces,
    so they are read after its ")")."""
    return stat.read_text().rsplit(")", 1)[1].split()


def _processes() -> dict[int, list[str]]:
    """Every process's /proc/PID/stat fields (`_stat_fields`). One pass over /proc."""
    found: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            found[int(stat.parent.name)] = _stat_fields(stat)
    return found


def process_state(pid: int) -> str | None:
    """The one-letter state of process `pid` (`T`: stopped, `Z`: a zombie), None once gone."""
    try:
        return _stat_fields(Path(f"/proc/{pid}/stat"))[0]
    except OSError:
        return None


def _descendants(pid: int, processes: dict[int, list[str]] | None = None) -> set[int]:
    parents = {p: int(fields[1]) for p, fields in (processes or _processes()).items()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def cpu_seconds(pids: dict[str, int], *, alone: str = "") -> dict[str, float]:
    """CPU time (user and system) each of `pids` and its descendants used so far, by name;
    the one named `alone` without its descendants. One pass over /proc.

    A child that exited meanwhile (a PostgreSQL backend of a closed connection) is no longer
    counted, so read it around work done on connections that stay open.
    """
    processes = _processes()
    used: dict[str, float] = {}
    for name, pid in pids.items():
        family = {pid} if name == alone else {pid, *_descendants(pid, processes)}
        # utime and stime, in clock ticks.
        ticks = sum(int(f[11]) + int(f[12]) for p in family if (f := processes.get(p)))
        used[name] = ticks / os.sysconf("SC_CLK_TCK")
    return used


def lower_priority(pid: int, niceness: int = 19) -> None:
    """Give process `pid` (every thread it has now; threads it starts later inherit it)
    the CPU only when nothing else wants it.

    On Linux a niceness belongs to a thread, so each of /proc/PID/task is set.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


@contextmanager
def paused(pids: Iterable[int]) -> Iterator[None]:
    """Stop processes `pids` and their descendants (SIGSTOP) for the block, and continue
    them after it, however it ends: work they were doing waits, and none is lost.

    A process that exits meanwhile is passed over.
    """
    processes = _processes()
    family = {process for pid in pids for process in {pid, *_descendants(pid, processes)}}
    stopped: list[int] = []
    try:
        for process in sorted(family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGSTOP)
                stopped.append(process)
        # A signal is delivered when its process is next scheduled: the block starts once
        # every one has stopped.
        for process in stopped:
            _wait_stopped(process)
        yield
    finally:
        for process in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGCONT)


def _wait_stopped(pid: int, within: float = 5.0) -> None:
    """Until process `pid` is stopped (state T), has exited, or `within` seconds passed."""
    deadline = time.monotonic() + within
    while process_state(pid) not in (None, "T", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.001)
