# Offload: the README's commands. Each target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The sandbox loads a workflow's module afresh for every run. Without bytecode beside the
# source (PYTHONDONTWRITEBYTECODE=1 stops Python from writing it) every run compiles the
# module again: 0.7-1.4 ms of CPU a run for workflows/email.py (docs/operations.md). Cheap
# when up to date, so every target that runs a worker refreshes it.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q offload workflows activities workers api bench

venv: $(STAMP) ## create .venv and install Offload with its dev tools

demo: $(STAMP) bytecode ## start the embedded stack, walk through the jobs, stop
	$(BIN)/offload demo

dev: $(STAMP) bytecode ## run Temporal (Web UI :8233), PostgreSQL, an SMTP sink, the worker and the API (:8000) until Ctrl-C
	$(BIN)/offload dev

test: $(STAMP) chromium bytecode ## run the tests (unit, workflows, integration, e2e, replay, browser)
	$(BIN)/pytest

# The browser tests drive Debian's chromium. As root (CI) this installs it when missing;
# otherwise those tests skip and say why (under CI=true they fail instead).
chromium: ## install Debian's chromium for the browser tests (as root, when missing)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| echo "chromium is missing: tests/browser will skip (as root: make chromium)"

screenshot: $(STAMP) chromium ## save docs/dead-letters.png: the dead-letter page in headless Chromium
	OFFLOAD_SCREENSHOT=$(CURDIR)/docs/dead-letters.png $(BIN)/pytest -q -p no:cacheprovider \
		tests/browser/test_dead_letter_page.py

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BENCH_STAMP) bytecode ## benchmarks beside the bare engine and DBOS, procrastinate, Celery (< 10 min)
	$(BIN)/python -m bench

chaos: $(STAMP) bytecode ## 500 emails and a report through worker kills, SMTP and Temporal outages; checks none is lost
	$(BIN)/python -m bench.chaos

clean: ## remove the dev stack's data (.offload/)
	rm -rf .offload

.PHONY: help bytecode venv demo dev test chromium screenshot lint bench chaos clean
