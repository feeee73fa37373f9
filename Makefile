# Offload: the README's commands. Each target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

venv: $(STAMP) ## create .venv and install Offload with its dev tools

demo: $(STAMP) ## start the embedded stack, walk through the jobs, stop
	$(BIN)/offload demo

dev: $(STAMP) ## run Temporal (Web UI :8233), PostgreSQL, an SMTP sink, the worker and the API (:8000) until Ctrl-C
	$(BIN)/offload dev

test: $(STAMP) ## run the tests (unit, workflows, integration, e2e, replay)
	$(BIN)/pytest

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BENCH_STAMP) ## benchmarks beside the bare engine and DBOS, procrastinate, Celery (< 10 min)
	$(BIN)/python -m bench

chaos: $(STAMP) ## 500 emails and a report through worker kills, SMTP and Temporal outages; checks none is lost
	$(BIN)/python -m bench.chaos

clean: ## remove the dev stack's data (.offload/)
	rm -rf .offload

.PHONY: help venv demo dev test lint bench chaos clean
