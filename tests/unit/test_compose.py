"""docker-compose.yml, the Dockerfile and deploy/ checked without a Docker engine.

No Docker runs on the machines that test Offload, so the stack is checked as data: the
compose file against the Compose specification, its services, pinned images, ports and
dependencies, and every variable the app's containers get against the settings' names.
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


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
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


def test_published_ports_are_distinct_and_workers_publish_none(
    services: dict[str, dict[str, Any]],
) -> None:
    published: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host = str(port).split(":")[0]
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    assert published == {
        "7233": "temporal",
        "8080": "temporal-ui",
        "5432": "app-postgres",
        "8000": "api",
        "8234": "codec-server",
        "1025": "mailpit",
        "8025": "mailpit",
        "9090": "prometheus",
        "3000": "grafana",
    }
    for name in WORKERS:
        # `--scale worker=N` needs replicas without fixed names or host ports.
        assert "container_name" not in services[name]
        assert "ports" not in services[name]


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
    ui = environment(services["temporal-ui"])
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:8234"
    assert env["TEMPORAL_UI_URL"] == "http://localhost:8080"


def test_prometheus_scrapes_every_worker_and_grafana_shows_offload_metrics(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [workers] = jobs["offload-worker"]["dns_sd_configs"]
    assert set(workers["names"]) == WORKERS
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
