"""docker-compose.yml, the Dockerfile and deploy/ checked without a Docker engine.

No Docker runs on the machines that test Offload, so the stack is checked as data: the
compose file against the Compose specification, its services, pinned images, ports,
networks and dependencies, every variable the app's containers get against the settings'
names, and its secrets through `interpolate`, an evaluator of Compose's `${VAR...}`
interpolation: with no default secret, a missing one refuses the whole file, naming it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import generate_latest

from api.metrics import ApiMetrics
from offload.settings import Settings
from tests.harness import offload_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS_PREFIXES = ("OFFLOAD_", "TEMPORAL_", "DATABASE_", "SMTP_", "MAIL_")
WORKERS = {"worker", "worker-email", "worker-reports"}
APP_SERVICES = {"migrate", "api", "codec-server", *WORKERS}
# Every secret of the stack, each required: none may have a default.
SECRETS = {
    "APP_DB_PASSWORD",
    "TEMPORAL_DB_PASSWORD",
    "OFFLOAD_API_TOKEN",
    "OFFLOAD_CODEC_TOKEN",
    "OFFLOAD_ENCRYPTION_KEY",
    "GRAFANA_ADMIN_PASSWORD",
}
OPTIONAL = {"OFFLOAD_ENCRYPTION_OLD_KEYS"}
# Services only other services talk to: on the internal network, nothing published.
INTERNAL_ONLY = {
    "temporal-postgres",
    "temporal-schema",
    "temporal",
    "temporal-namespace",
    "app-postgres",
    "migrate",
}
SECRET_NAME = re.compile(r"PASSWORD|PWD|TOKEN|SECRET|_KEY$|_KEYS$|^DATABASE_URL$")


class MissingVariableError(ValueError):
    """`${VAR:?message}` (or `${VAR?message}`) met an unset (or, with `:`, empty) variable."""


_VARIABLE = re.compile(
    r"\$(?:\$|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`value` (parsed YAML) with Compose's interpolation applied to every string in it.

    `$$` is a literal `$`; `$VAR` and `${VAR}` are the variable (empty when unset);
    `${VAR:-d}` / `${VAR-d}` default when unset or empty / unset; `${VAR:?m}` / `${VAR?m}`
    refuse with message `m`; `${VAR:+a}` / `${VAR+a}` give `a` when set and non-empty / set.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("bare") or match.group("name")
        op, arg = match.group("op"), match.group("arg") or ""
        found = env.get(name)
        present = found is not None and (found != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return found if present and found is not None else arg
        if op in (":?", "?"):
            if not present:
                raise MissingVariableError(f"required variable {name} is missing a value: {arg}")
            return found or ""
        if op in (":+", "+"):
            return arg if present else ""
        return found or ""

    return _VARIABLE.sub(substitute, value)


def secrets_env() -> dict[str, str]:
    return {name: f"{name.lower().replace('_', '-')}-value" for name in SECRETS}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = interpolate(compose, secrets_env())["services"]
    return found


def settings_aliases() -> set[str]:
    return {
        info.validation_alias
        for info in Settings.model_fields.values()
        if isinstance(info.validation_alias, str)
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_the_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_part_of_the_stack_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "temporal-postgres",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "app-postgres",
        "mailpit",
        "prometheus",
        "grafana",
        "jaeger",
        *APP_SERVICES,
    }
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")


def test_images_are_pinned_and_the_app_is_built_here(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        image = service["image"]
        if name in APP_SERVICES:
            assert service["build"] == "."
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        assert any(c.isdigit() for c in tag), f"{name}: {image} is not a version"


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each port the service publishes; "" for all interfaces."""
    found = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        found.append(("", parts[0]) if len(parts) == 2 else (parts[0], parts[1]))
    return found


def test_only_the_ports_a_user_needs_are_published_and_workers_publish_none(
    services: dict[str, dict[str, Any]],
) -> None:
    by_port: dict[str, tuple[str, str]] = {}
    for name, service in services.items():
        for host, port in published(service):
            assert port not in by_port, f"{name} and {by_port[port][0]} both publish {port}"
            by_port[port] = (name, host)
    assert by_port == {
        # The API is the app's front door, on every interface (its routes need the token).
        "8000": ("api", ""),
        # Tools without a sign-in of their own: this machine only.
        "8080": ("temporal-ui", "127.0.0.1"),
        "8234": ("codec-server", "127.0.0.1"),
        "8025": ("mailpit", "127.0.0.1"),
        "9090": ("prometheus", "127.0.0.1"),
        "3000": ("grafana", "127.0.0.1"),
        "16686": ("jaeger", "127.0.0.1"),
    }
    for name in WORKERS:
        # `--scale worker=N` needs replicas without fixed names or host ports.
        assert "container_name" not in services[name]
        assert "ports" not in services[name]


def test_temporal_and_the_databases_are_on_the_internal_network_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = compose["networks"]
    assert networks["internal"]["internal"] is True
    assert not (networks["edge"] or {}).get("internal", False)
    for name, service in services.items():
        assert service.get("networks"), f"{name} is on the default network"
        if name in INTERNAL_ONLY:
            assert service["networks"] == ["internal"], name
            assert "ports" not in service, name
        if "ports" in service:
            assert "edge" in service["networks"], f"{name} publishes from an internal network"
    # Whoever talks to Temporal or a database shares the internal network with it.
    for name in {*WORKERS, "api", "migrate", "temporal-ui", "prometheus"}:
        assert "internal" in services[name]["networks"], name
    # The codec server needs the keys and nothing of the stack.
    assert services["codec-server"]["networks"] == ["edge"]


def test_a_missing_or_empty_secret_refuses_the_file_naming_it(compose: dict[str, Any]) -> None:
    full = secrets_env()
    interpolate(compose, full)
    for name in sorted(SECRETS):
        for env in ({k: v for k, v in full.items() if k != name}, {**full, name: ""}):
            with pytest.raises(MissingVariableError, match=rf"\b{name}\b"):
                interpolate(compose, env)
    # The rotation's decrypt-only keys are optional.
    assert (
        interpolate(compose, full)["services"]["worker"]["environment"][
            "OFFLOAD_ENCRYPTION_OLD_KEYS"
        ]
        == ""
    )


def test_the_interpolation_evaluator_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "$$SET": "$SET",
        "$SET-${SET}": "v-v",
        "${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}": "d d  d",
        "${SET:+a}|${EMPTY:+a}|${EMPTY+a}|${UNSET+a}": "a||a|",
        "${EMPTY?m}": "",
    }
    for text, expected in cases.items():
        assert interpolate(text, env) == expected, text
    for text in ("${UNSET:?m}", "${EMPTY:?m}", "${UNSET?m}"):
        with pytest.raises(MissingVariableError):
            interpolate(text, env)


def raw_secret_values(compose: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, variable, raw value) of every secret-looking variable of every service."""
    found = []
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        items = env.items() if isinstance(env, dict) else (i.split("=", 1) for i in env)
        found += [(name, k, str(v)) for k, v in items if SECRET_NAME.search(k)]
    return found


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    for service, variable, raw in raw_secret_values(compose):
        refs = _VARIABLE.findall(raw)
        if variable in OPTIONAL:
            assert raw == f"${{{variable}:-}}", (service, variable)
            continue
        # Each secret comes from a required variable, never from a literal or a default.
        assert refs, f"{service}: {variable} is a literal"
        for match in _VARIABLE.finditer(raw):
            assert match.group("op") == ":?", f"{service}: {variable} = {raw}"
            assert match.group("name") in SECRETS
        if variable == "DATABASE_URL":
            # The URL's password is the variable, the rest is not a secret.
            password = urlsplit(interpolate(raw, secrets_env())).password
            assert password == secrets_env()["APP_DB_PASSWORD"], raw


def test_the_codec_server_has_its_own_token_and_only_what_it_needs(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    raw = compose["services"]["codec-server"]["environment"]
    assert raw["OFFLOAD_CODEC_TOKEN"].startswith("${OFFLOAD_CODEC_TOKEN:?")
    codec = environment(services["codec-server"])
    assert codec["OFFLOAD_CODEC_TOKEN"] != environment(services["api"])["OFFLOAD_API_TOKEN"]
    assert set(codec) == {
        "TEMPORAL_UI_URL",
        "OFFLOAD_ENCRYPTION_KEY",
        "OFFLOAD_ENCRYPTION_OLD_KEYS",
        "OFFLOAD_CODEC_TOKEN",
    }
    for name in APP_SERVICES - {"codec-server"}:
        assert "OFFLOAD_CODEC_TOKEN" not in environment(services[name]), name
    settings = Settings(_env_file=None, **codec)  # type: ignore[arg-type]
    # It serves the browser of the Web UI that compose publishes, and no other origin.
    assert settings.temporal_ui_url == "http://localhost:8080"
    assert environment(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"] == (
        "http://localhost:8234"
    )
    assert settings.codec_server_token == codec["OFFLOAD_CODEC_TOKEN"]
    assert "profiles" not in services["codec-server"]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_services_start_in_order(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert set(depends_on(service)) <= set(services), name
    assert depends_on(services["temporal-schema"]) == {"temporal-postgres": "service_healthy"}
    assert depends_on(services["temporal"]) == {"temporal-schema": "service_completed_successfully"}
    assert depends_on(services["migrate"]) == {"app-postgres": "service_healthy"}
    for name in ("api", *WORKERS):
        assert depends_on(services[name]) == {
            "temporal-namespace": "service_completed_successfully",
            "migrate": "service_completed_successfully",
        }, name


def test_app_containers_run_offload_commands(services: dict[str, dict[str, Any]]) -> None:
    parser = offload_parser()
    commands = {name: services[name]["command"] for name in APP_SERVICES}
    assert commands["api"][:2] == ["offload", "api"]
    for name, command in commands.items():
        assert command[0] == "offload", name
        if name != "api":
            parser.parse_args(command[1:])
    kinds = {services[name]["command"][-1] for name in WORKERS}
    assert kinds == {"workflows,default", "email", "reports"}


def test_every_app_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    aliases = settings_aliases()
    for name, service in services.items():
        env = environment(service)
        ours = [v for v in env if v.startswith(SETTINGS_PREFIXES)]
        if name in APP_SERVICES:
            assert ours, name
            unknown = [v for v in ours if v not in aliases]
            assert not unknown, f"{name}: {unknown} are not settings"
            Settings(_env_file=None, **{k: v for k, v in env.items() if "${" not in v})  # type: ignore[arg-type]
        else:
            # Third-party images read TEMPORAL_* of their own; Offload's own must not leak.
            assert not [v for v in ours if v.startswith(("OFFLOAD_", "DATABASE_"))], name


def test_the_app_reaches_the_services_of_the_stack(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["worker"])
    db = urlsplit(env["DATABASE_URL"])
    postgres = environment(services["app-postgres"])
    assert (db.hostname, db.port, db.username, db.password, db.path) == (
        "app-postgres",
        5432,
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["SMTP_HOST"] == "mailpit"
    assert env["SMTP_PORT"] == "1025"
    assert env["OFFLOAD_METRICS_ADDRESS"] == "0.0.0.0:9464"
    assert env["TEMPORAL_UI_URL"] == "http://localhost:8080"
    temporal = environment(services["temporal"])
    temporal_db = environment(services["temporal-postgres"])
    assert temporal["POSTGRES_PWD"] == temporal_db["POSTGRES_PASSWORD"]
    assert (
        environment(services["temporal-schema"])["SQL_PASSWORD"] == temporal_db["POSTGRES_PASSWORD"]
    )


def test_the_api_and_the_workers_send_their_traces_to_jaeger(
    services: dict[str, dict[str, Any]],
) -> None:
    names = set()
    for name in ("api", *WORKERS):
        env = environment(services[name])
        # otlp unless the operator sets OTEL_TRACES_EXPORTER (the fixture interpolates).
        assert env["OTEL_TRACES_EXPORTER"] == "otlp", name
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        # OTLP over HTTP, the protocol offload/tracing.py exports with.
        assert (endpoint.hostname, endpoint.port) == ("jaeger", 4318), name
        names.add(env["OTEL_SERVICE_NAME"])
    assert names == {"offload-api", "offload-worker"}
    assert environment(services["jaeger"])["COLLECTOR_OTLP_ENABLED"] == "true"
    assert services["jaeger"]["image"].startswith("jaegertracing/")


def test_prometheus_scrapes_every_worker_and_grafana_shows_offload_metrics(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [workers] = jobs["offload-worker"]["dns_sd_configs"]
    # The API hosts a workflow worker too (OFFLOAD_API_WORKER): its job metrics are scraped.
    assert set(workers["names"]) == {*WORKERS, "api"}
    assert workers["port"] == 9464
    targets = [
        t for job in jobs.values() for s in job.get("static_configs", []) for t in s["targets"]
    ]
    for target in targets:
        assert target.split(":")[0] in services
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/offload.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "approximate_backlog_count",
        "offload_jobs_succeeded_total",
        "offload_jobs_dead_lettered_total",
        "offload_job_enqueue_to_done_latency_seconds_bucket",
        "temporal_activity_schedule_to_start_latency_seconds_bucket",
        "offload_api_request_seconds_bucket",
        "offload_api_job_starts_total",
    ):
        assert metric in exprs
    # The API's metrics the dashboard reads are the ones the API serves.
    served = generate_latest(ApiMetrics().registry).decode()
    for metric in set(re.findall(r"offload_api_\w+", exprs)):
        assert f"# TYPE {metric.removesuffix('_bucket').removesuffix('_total')}" in served, metric


def test_the_image_is_small_and_runs_as_a_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    froms = [line for line in dockerfile if line.startswith("FROM ")]
    assert all("-slim" in line for line in froms)
    users = [line for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] != "USER root"
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()
