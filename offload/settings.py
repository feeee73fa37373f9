"""Settings: every command and process reads its configuration from one `Settings` object."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from offload.models import RetryConfig

DEV_POSTGRES_PORT = 5433


class Settings(BaseSettings):
    """Configuration from environment variables (and a `.env` file, if present).

    The names are the ones of DESIGN.md; Offload's own tuning knobs start with `OFFLOAD_`.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Temporal
    temporal_address: str = Field("localhost:7233", validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_api_key: SecretStr | None = Field(None, validation_alias="TEMPORAL_API_KEY")
    temporal_tls_cert: Path | None = Field(None, validation_alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(None, validation_alias="TEMPORAL_TLS_KEY")
    # A private CA's certificate and the name on the server's certificate, for self-run clusters.
    temporal_tls_ca: Path | None = Field(None, validation_alias="TEMPORAL_TLS_CA")
    temporal_tls_server_name: str | None = Field(None, validation_alias="TEMPORAL_TLS_SERVER_NAME")
    temporal_ui_url: str = Field("http://localhost:8233", validation_alias="TEMPORAL_UI_URL")

    # PostgreSQL: unset means the embedded server of `offload dev`.
    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")

    # SMTP
    smtp_host: str = Field("localhost", validation_alias="SMTP_HOST")
    smtp_port: int = Field(1025, validation_alias="SMTP_PORT", ge=1, le=65535)
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    smtp_timeout_seconds: float = Field(10.0, validation_alias="SMTP_TIMEOUT_SECONDS", gt=0)
    # Open SMTP connections a worker keeps and reuses; 0 opens one per email.
    smtp_max_connections: int = Field(
        4, validation_alias="OFFLOAD_SMTP_MAX_CONNECTIONS", ge=0, le=100
    )
    mail_from: str = Field("Offload <noreply@offload.localhost>", validation_alias="MAIL_FROM")

    # Security
    encryption_key: SecretStr | None = Field(None, validation_alias="OFFLOAD_ENCRYPTION_KEY")
    # Keys rotated out, comma-separated: payloads they encrypted still decrypt.
    encryption_old_keys: SecretStr | None = Field(
        None, validation_alias="OFFLOAD_ENCRYPTION_OLD_KEYS"
    )
    codec_server_address: str = Field(
        "127.0.0.1:8234", validation_alias="OFFLOAD_CODEC_SERVER_ADDRESS"
    )
    # The token the codec server wants: its own, never the API's (decrypting is not reading
    # reports). Required when it listens beyond loopback.
    codec_token: SecretStr | None = Field(None, validation_alias="OFFLOAD_CODEC_TOKEN")
    api_token: SecretStr | None = Field(None, validation_alias="OFFLOAD_API_TOKEN")

    # HTTP API (`offload api`, and `offload dev` beside the worker)
    api_host: str = Field("127.0.0.1", validation_alias="OFFLOAD_API_HOST")
    api_port: int = Field(8000, validation_alias="OFFLOAD_API_PORT", ge=1, le=65535)
    api_pool_size: int = Field(20, validation_alias="OFFLOAD_API_POOL_SIZE", ge=1)
    api_max_body_bytes: int = Field(16_384, validation_alias="OFFLOAD_API_MAX_BODY_BYTES", ge=1)
    api_start_timeout_seconds: float = Field(
        1.0, validation_alias="OFFLOAD_API_START_TIMEOUT_SECONDS", gt=0
    )
    # `offload api` runs a workflow worker of its own, so its starts are eager (the job's
    # first workflow task comes back in the start's answer, a trip through matching saved).
    api_worker: bool = Field(True, validation_alias="OFFLOAD_API_WORKER")
    after_response_timeout_seconds: float = Field(
        5.0, validation_alias="OFFLOAD_AFTER_RESPONSE_TIMEOUT_SECONDS", gt=0
    )
    after_response_max_tasks: int = Field(
        100, validation_alias="OFFLOAD_AFTER_RESPONSE_MAX_TASKS", ge=1
    )
    # The relay of the outbox, in the worker: how often it looks, and how old a row must be
    # before it is the relay's (younger ones are still being started by the API).
    outbox_poll_seconds: float = Field(1.0, validation_alias="OFFLOAD_OUTBOX_POLL_SECONDS", gt=0)
    outbox_grace_seconds: float = Field(2.0, validation_alias="OFFLOAD_OUTBOX_GRACE_SECONDS", ge=0)
    # Abuse limits of POST /leads, shared by every API process (0 turns one off): requests
    # per client address per window (then 429), confirmation emails per mailbox per window
    # (then the lead is saved without one). The address comes from X-Forwarded-For only
    # when the peer is one of OFFLOAD_API_FORWARDED_ALLOW_IPS (uvicorn's forwarded_allow_ips).
    api_client_rate_limit: int = Field(60, validation_alias="OFFLOAD_API_CLIENT_RATE_LIMIT", ge=0)
    api_client_rate_window_seconds: int = Field(
        60, validation_alias="OFFLOAD_API_CLIENT_RATE_WINDOW_SECONDS", ge=1
    )
    api_recipient_email_limit: int = Field(
        3, validation_alias="OFFLOAD_API_RECIPIENT_EMAIL_LIMIT", ge=0
    )
    api_recipient_window_seconds: int = Field(
        86_400, validation_alias="OFFLOAD_API_RECIPIENT_WINDOW_SECONDS", ge=1
    )
    api_forwarded_allow_ips: str = Field(
        "127.0.0.1,::1", validation_alias="OFFLOAD_API_FORWARDED_ALLOW_IPS"
    )
    # Answers kept for Idempotency-Key, and started outbox rows, are deleted after this.
    api_retention_hours: int = Field(24, validation_alias="OFFLOAD_API_RETENTION_HOURS", ge=1)

    # Where `offload dev` keeps its data and where report files go.
    data_dir: Path = Field(Path(".offload"), validation_alias="OFFLOAD_DATA_DIR")
    dev_postgres_port: int = Field(DEV_POSTGRES_PORT, validation_alias="OFFLOAD_DEV_POSTGRES_PORT")

    # Task queues: a prefix lets several environments (or tests) share one namespace.
    task_queue_prefix: str = Field("", validation_alias="OFFLOAD_TASK_QUEUE_PREFIX")

    # Retries of job activities (exponential backoff).
    retry_initial_interval_seconds: float = Field(
        1.0, validation_alias="OFFLOAD_RETRY_INITIAL_INTERVAL_SECONDS", gt=0
    )
    retry_backoff_coefficient: float = Field(
        2.0, validation_alias="OFFLOAD_RETRY_BACKOFF_COEFFICIENT", ge=1
    )
    retry_maximum_interval_seconds: float = Field(
        60.0, validation_alias="OFFLOAD_RETRY_MAXIMUM_INTERVAL_SECONDS", gt=0
    )
    retry_maximum_attempts: int = Field(5, validation_alias="OFFLOAD_RETRY_MAXIMUM_ATTEMPTS", ge=1)

    # Worker tuning
    worker_grace_seconds: float = Field(30.0, validation_alias="OFFLOAD_WORKER_GRACE_SECONDS", ge=0)
    email_rate_limit_per_second: float | None = Field(
        None, validation_alias="OFFLOAD_EMAIL_RATE_LIMIT_PER_SECOND", gt=0
    )
    reports_max_concurrent_activities: int = Field(
        2, validation_alias="OFFLOAD_REPORTS_MAX_CONCURRENT_ACTIVITIES", ge=1
    )
    # Where a worker serves its Prometheus metrics (host:port); empty turns them off.
    metrics_address: str = Field("127.0.0.1:9464", validation_alias="OFFLOAD_METRICS_ADDRESS")

    @field_validator("encryption_key", "encryption_old_keys", "codec_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # Compose passes `${OFFLOAD_ENCRYPTION_KEY:-}` as an empty string when it is unset.
        return None if isinstance(value, str) and not value.strip() else value

    # The dead-letter workflow continues as new past this many history events (or sooner,
    # when the server suggests it), so its history stays bounded.
    dlq_max_history_events: int = Field(
        10_000, validation_alias="OFFLOAD_DLQ_MAX_HISTORY_EVENTS", ge=100
    )

    # Schedules (cron) and the maintenance jobs they run
    schedule_time_zone: str = Field("UTC", validation_alias="OFFLOAD_SCHEDULE_TIME_ZONE")
    schedule_catchup_window_seconds: float = Field(
        86400.0, validation_alias="OFFLOAD_SCHEDULE_CATCHUP_WINDOW_SECONDS", ge=60
    )
    maintenance_batch_size: int = Field(
        500, validation_alias="OFFLOAD_MAINTENANCE_BATCH_SIZE", ge=1, le=100_000
    )
    digest_batch_size: int = Field(200, validation_alias="OFFLOAD_DIGEST_BATCH_SIZE", ge=1)
    digest_parallel_batches: int = Field(
        4, validation_alias="OFFLOAD_DIGEST_PARALLEL_BATCHES", ge=1
    )
    # Unset: `offload dev` serves a sample file; a worker outside it fails the job, saying so.
    market_data_url: str | None = Field(None, validation_alias="MARKET_DATA_URL")
    market_data_timeout_seconds: float = Field(
        10.0, validation_alias="OFFLOAD_MARKET_DATA_TIMEOUT_SECONDS", gt=0
    )

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
    report_max_days: int = Field(366, validation_alias="OFFLOAD_REPORT_MAX_DAYS", ge=1)
    report_chunk_rows: int = Field(250_000, validation_alias="OFFLOAD_REPORT_CHUNK_ROWS", ge=1)
    report_page_size: int = Field(20_000, validation_alias="OFFLOAD_REPORT_PAGE_SIZE", ge=1)
    report_page_pause_seconds: float = Field(
        0.0, validation_alias="OFFLOAD_REPORT_PAGE_PAUSE_SECONDS", ge=0
    )
    report_max_parallel_chunks: int = Field(
        4, validation_alias="OFFLOAD_REPORT_MAX_PARALLEL_CHUNKS", ge=1
    )
    report_chunks_per_run: int = Field(200, validation_alias="OFFLOAD_REPORT_CHUNKS_PER_RUN", ge=1)
    report_heartbeat_timeout_seconds: float = Field(
        30.0, validation_alias="OFFLOAD_REPORT_HEARTBEAT_TIMEOUT_SECONDS", gt=0
    )
    report_heartbeat_throttle_seconds: float = Field(
        1.0, validation_alias="OFFLOAD_REPORT_HEARTBEAT_THROTTLE_SECONDS", gt=0
    )

    @property
    def retry(self) -> RetryConfig:
        """The retry policy of job activities, as the job inputs carry it."""
        return RetryConfig(
            initial_interval_seconds=self.retry_initial_interval_seconds,
            backoff_coefficient=self.retry_backoff_coefficient,
            maximum_interval_seconds=self.retry_maximum_interval_seconds,
            maximum_attempts=self.retry_maximum_attempts,
        )

    @property
    def worker_grace_period(self) -> timedelta:
        return timedelta(seconds=self.worker_grace_seconds)

    @property
    def dev_database_url(self) -> str:
        """The DSN of the embedded PostgreSQL that `offload dev` runs."""
        return f"postgresql://offload@127.0.0.1:{self.dev_postgres_port}/offload"

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
