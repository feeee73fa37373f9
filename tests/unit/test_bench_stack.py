"""`bench.stack.paused`: the job side stopped while the request path is measured alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.stack import paused
from bench.stack import process_state as state

# A parent that starts a child and both wait: the child stands for a PostgreSQL backend or
# a thread pool's process, which a pause must stop with its parent.
FAMILY = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def family() -> Iterator[tuple[int, int]]:
    command = [sys.executable, "-c", FAMILY]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        yield parent.pid, child
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        parent.kill()


def test_a_paused_process_and_its_children_are_stopped_then_continued(
    family: tuple[int, int],
) -> None:
    parent, child = family
    with paused([parent]):
        assert (state(parent), state(child)) == ("T", "T")
    assert state(parent) != "T" and state(child) != "T"


def test_a_pause_ends_when_the_block_fails(family: tuple[int, int]) -> None:
    parent, child = family
    with pytest.raises(RuntimeError), paused([parent]):
        raise RuntimeError("the run failed")
    assert state(parent) != "T" and state(child) != "T"


def test_a_process_gone_meanwhile_does_not_fail_the_pause(family: tuple[int, int]) -> None:
    parent, child = family
    with paused([parent]):
        os.kill(child, signal.SIGKILL)
    assert state(parent) != "T"
