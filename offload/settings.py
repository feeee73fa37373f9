"""Settings: every command and process reads its configuration from one `Settings` object."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasGenerator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from offload import mail
from offload.models import ReportTuning, RetryConfig, field_of

DEV_POSTGRES_PORT = 5433
DEV_TEMPORAL_PORT = 7233

# The settings whose variables keep the names other tools and guides use (DESIGN.md).
STANDARD_VARIABLES = frozenset(
    {
        "temporal_address",
        "temporal_namespace",
        "temporal_api_key",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_ca",
        "temporal_tls_server_name",
        "temporal_ui_url",
        "database_url",
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_password",
        "smtp_starttls",
        "smtp_timeout_seconds",
        "mail_from",
        "market_data_url",
    }
)


def variable_name(field: str) -> str:
    """The environment variable of the setting `field`: `OFFLOAD_<FIELD>`, unless standard."""
    return field.upper() if field in STANDARD_VARIABLES else f"OFFLOAD_{field.upper()}"


class Settings(BaseSettings):
    """Configuration from environment variables (and a `.env` file, if present).

    Each field reads the variable `variable_name` gives it: the names of DESIGN.md, where
    Offload's own tuning knobs start with `OFFLOAD_`.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        frozen=True,
        alias_generator=AliasGenerator(validation_alias=variable_name),
    )

    # Temporal: unset, the address is the dev server's that `offload dev` runs.
    dev_temporal_port: int = Field(DEV_TEMPORAL_PORT, ge=1, le=65535)
    temporal_address: str = Field("", validate_default=True)
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    # A private CA's certificate and the name on the server's certificate, for self-run clusters.
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_ui_url: str = "http://localhost:8233"

    # PostgreSQL: unset means the embedded server of `offload dev`.
    database_url: SecretStr | None = None

    # SMTP
    smtp_host: str = "localhost"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    # Open SMTP connections a worker keeps and reuses; 0 opens one per email.
    smtp_max_connections: int = Field(4, ge=0, le=100)
    mail_from: str = "Offload <noreply@offload.localhost>"

    # Security
    encryption_key: SecretStr | None = None
    # Keys rotated out, comma-separated: payloads they encrypted still decrypt.
    encryption_old_keys: SecretStr | None = None
    codec_server_address: str = "127.0.0.1:8234"
    # The token the codec server wants: its own, never the API's (decrypting is not reading
    # reports). Required when it listens beyond loopback.
    codec_token: SecretStr | None = None
    api_token: SecretStr | None = None

    # HTTP API (`offload api`, and `offload dev` beside the worker)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_pool_size: int = Field(20, ge=1)
    api_max_body_bytes: int = Field(16_384, ge=1)
    api_start_timeout_seconds: float = Field(1.0, gt=0)
    # `offload api` runs a workflow worker of its own, so its starts are eager (the job's
    # first workflow task comes back in the start's answer, a trip through matching saved).
    api_worker: bool = True
    after_response_timeout_seconds: float = Field(5.0, gt=0)
    after_response_max_tasks: int = Field(100, ge=1)
    # The relay of the outbox, in the worker: how often it looks, and how old a row must be
    # before it is the relay's (younger ones are still being started by the API).
    outbox_poll_seconds: float = Field(1.0, gt=0)
    outbox_grace_seconds: float = Field(2.0, ge=0)
    # Abuse limits of POST /leads, shared by every API process (0 turns one off): requests
    # per client address per window (then 429), confirmation emails per mailbox per window
    # (then the lead is saved without one). The address comes from X-Forwarded-For only
    # when the peer is one of OFFLOAD_API_FORWARDED_ALLOW_IPS (uvicorn's forwarded_allow_ips).
    api_client_rate_limit: int = Field(60, ge=0)
    api_client_rate_window_seconds: int = Field(60, ge=1)
    api_recipient_email_limit: int = Field(3, ge=0)
    api_recipient_window_seconds: int = Field(86_400, ge=1)
    api_forwarded_allow_ips: str = "127.0.0.1,::1"
    # Answers kept for Idempotency-Key, and started outbox rows, are deleted after this.
    api_retention_hours: int = Field(24, ge=1)

    # Where `offload dev` keeps its data and where report files go.
    data_dir: Path = Path(".offload")
    dev_postgres_port: int = DEV_POSTGRES_PORT

    # Task queues: a prefix lets several environments (or tests) share one namespace.
    task_queue_prefix: str = ""

    # Retries of job activities (exponential backoff): `retry_<field>` for each field of
    # RetryConfig, with its default and bounds.
    retry_initial_interval_seconds: float = field_of(RetryConfig, "initial_interval_seconds")
    retry_backoff_coefficient: float = field_of(RetryConfig, "backoff_coefficient")
    retry_maximum_interval_seconds: float = field_of(RetryConfig, "maximum_interval_seconds")
    retry_maximum_attempts: int = field_of(RetryConfig, "maximum_attempts")

    # Worker tuning
    worker_grace_seconds: float = Field(30.0, ge=0)
    email_rate_limit_per_second: float | None = Field(None, gt=0)
    reports_max_concurrent_activities: int = Field(2, ge=1)
    # Where a worker serves its Prometheus metrics (host:port); empty turns them off.
    metrics_address: str = "127.0.0.1:9464"

    @field_validator("encryption_key", "encryption_old_keys", "codec_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # Compose passes `${OFFLOAD_ENCRYPTION_KEY:-}` as an empty string when it is unset.
        return None if isinstance(value, str) and not value.strip() else value

    # The dead-letter workflow continues as new past this many history events (or sooner,
    # when the server suggests it), so its history stays bounded.
    dlq_max_history_events: int = Field(10_000, ge=100)

    # Schedules (cron) and the maintenance jobs they run
    schedule_time_zone: str = "UTC"
    schedule_catchup_window_seconds: float = Field(86400.0, ge=60)
    maintenance_batch_size: int = Field(500, ge=1, le=100_000)
    digest_batch_size: int = Field(200, ge=1)
    digest_parallel_batches: int = Field(4, ge=1)
    # Unset: `offload dev` serves a sample file; a worker outside it fails the job, saying so.
    market_data_url: str | None = None
    market_data_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("temporal_address")
    @classmethod
    def _dev_server_unless_set(cls, value: str, info: ValidationInfo) -> str:
        if value.strip():
            return value
        return f"localhost:{info.data.get('dev_temporal_port', DEV_TEMPORAL_PORT)}"

    @field_validator("mail_from")
    @classmethod
    def _ascii_sender(cls, value: str) -> str:
        return mail.check_sender(value)

    @field_validator("schedule_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as UTC)"
            ) from None
        return value

    @property
    def schedule_catchup_window(self) -> timedelta:
        return timedelta(seconds=self.schedule_catchup_window_seconds)

    # Reports
    report_max_days: int = Field(366, ge=1)
    # Two chunks for a million leads: one wave on a worker's two report slots (a second wave
    # waits for a slot and a poll; docs/performance.md#reports).
    report_chunk_rows: int = Field(500_000, ge=1)
    report_page_size: int = Field(20_000, ge=1)
    report_page_pause_seconds: float = Field(0.0, ge=0)
    # ReportTuning's fields, as `report_<field>`.
    report_max_parallel_chunks: int = field_of(ReportTuning, "max_parallel_chunks")
    report_chunks_per_run: int = field_of(ReportTuning, "chunks_per_run")
    report_heartbeat_timeout_seconds: float = field_of(ReportTuning, "heartbeat_timeout_seconds")
    report_heartbeat_throttle_seconds: float = Field(1.0, gt=0)

    @property
    def retry(self) -> RetryConfig:
        """The retry policy of job activities, as the job inputs carry it."""
        return RetryConfig(
            **{name: getattr(self, f"retry_{name}") for name in RetryConfig.model_fields}
        )

    @property
    def worker_grace_period(self) -> timedelta:
        return timedelta(seconds=self.worker_grace_seconds)

    @property
    def dev_database_url(self) -> str:
        """The DSN of the embedded PostgreSQL that `offload dev` runs (it has no TLS: a client
        that asks first, as libpq's default `prefer` does, pays for the refusal)."""
        return f"postgresql://offload@127.0.0.1:{self.dev_postgres_port}/offload?sslmode=disable"

    @property
    def dsn(self) -> str:
        """The app database's DSN: `DATABASE_URL`, or the embedded server's."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.dev_database_url

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in another process (a worker, say)."""
        env: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            if name not in self.model_fields_set or not isinstance(info.validation_alias, str):
                continue
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[info.validation_alias] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env

    @property
    def codec_server_token(self) -> str | None:
        """The token the codec server checks: `OFFLOAD_CODEC_TOKEN`."""
        return self.codec_token.get_secret_value() if self.codec_token is not None else None

    @property
    def codec_server_url(self) -> str:
        return f"http://{self.codec_server_address}"

    def uses_own(self, name: str) -> bool:
        """Whether the variable `name` was set, so `offload dev` must not start its own service."""
        return name in self.model_fields_set
