# costaware — the commands a new user runs. `make demo` then `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export COSTAWARE_HOME ?= $(CURDIR)/.costaware
BATCHES ?= 26
MODEL ?= elec2

.PHONY: setup compose-tool demo test test-fast lint typecheck airflow lock bench-policy bench-drift bench-scale clean

# The FinOps Foundation's focus-validator needs Python >= 3.12 and an older numpy than
# costaware's, so it lives in its own virtualenv; the FOCUS tests call it as a program.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
	$(shell command -v python3.12 2>/dev/null))
FOCUS_VENV := .venv-focus

setup: $(VENV)/.installed $(FOCUS_VENV)/.installed compose-tool ## create the virtualenvs, pinned

# Programs the tests use, from Debian's packages: docker-compose (1.29) checks
# docker-compose.yaml without a Docker engine; chromium is the real browser the Costaware page
# is tested in (Playwright drives it); promtool (package prometheus) checks the Prometheus
# configuration and the dashboards' queries. Installed with apt when missing and allowed
# (root), else say what to run.
SYSTEM_TOOLS := docker-compose:docker-compose chromium:chromium promtool:prometheus
compose-tool:
	@missing=""; for t in $(SYSTEM_TOOLS); do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "the tests need:$$missing — sudo apt-get install$$missing"; exit 1; fi; fi

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(FOCUS_VENV)/.installed: constraints-focus.txt
	@test -n "$(PYTHON312)" || { echo "focus-validator needs python3.12 (set PYTHON312=...)"; exit 1; }
	$(PYTHON312) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/python -m pip install --quiet -c constraints-focus.txt focus-validator
	touch $@

demo: $(VENV)/.installed ## replay Elec2 week by week through the real DAG (state in .costaware/)
	$(BIN)/costaware replay $(MODEL) --batches $(BATCHES)

# Three pytest-xdist workers on 2 cores: much of the suite waits on servers it started
# (Airflow's scheduler and triggerer, MLflow, moto, Celery, Chromium), so with two workers the
# cores were busy only ~2/3 of the time (user + sys 20.8 min in 15.7 min of wall on an idle
# machine, 2026-11-27). A module's tests stay on one worker
# (loadscope): module fixtures start whole stacks that must be built once. (loadgroup does
# not group under pytest 9: xdist 3.8 renames item._nodeid, which pytest 9 no longer reads.)
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

test: setup ## the whole test suite (SQLite and the PostgreSQL on 127.0.0.1:5432)
	$(PYTEST)

test-fast: setup ## the suite without the slow end-to-end parts (fault injection, property tests)
	$(PYTEST) -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff check include dags plugins tests bench
	$(BIN)/ruff format --check include dags plugins tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy

airflow: $(VENV)/.installed ## Airflow UI on the same state: http://localhost:8080 (login printed)
	$(BIN)/costaware airflow standalone

lock: ## re-pin the dependency set after changing pyproject.toml
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^costaware' > constraints.txt
	$(FOCUS_VENV)/bin/python -m pip freeze > constraints-focus.txt

bench-policy: $(VENV)/.installed
	$(BIN)/python bench/policy.py

bench-drift: $(VENV)/.installed
	$(BIN)/python bench/drift.py

bench-scale: $(VENV)/.installed ## DAG parse time and scheduler loop time, 1 to 300 models
	$(BIN)/python bench/scale.py

# Issue 13: a generated FOCUS export of 100k / 1M / 10M charges grouped by a tag key,
# streaming, vs the pandas baseline (bench/results/finops.md; files under /tmp, ~5 min).
.PHONY: bench-finops
bench-finops: $(VENV)/.installed ## FOCUS export by any tag at 100k, 1M and 10M rows
	$(BIN)/python bench/finops.py

# Issue 9: Elec2's training job on the local backend at spot hazards 0 / low / high / every:
# wall time, reclaims, $ vs on-demand, exactness (bench/results/spot.md; ~2 min).
.PHONY: bench-spot
bench-spot: $(VENV)/.installed ## spot training: reclaims, $ saved, resumed model == uninterrupted
	$(BIN)/python bench/spot.py

clean: ## forget the local state (data, ledger, registry, Airflow DB)
	rm -rf $(COSTAWARE_HOME)

.PHONY: compose-check
compose-check: $(VENV)/.installed ## check docker-compose.yaml, .env.example, Dockerfile (no engine)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/deploy/test_compose.py

# The deployed topology on this machine, without Docker (docker-compose.yaml's shape): moto as
# S3, an MLflow server, Airflow's scheduler, DAG processor, triggerer, API server and two Celery
# workers on the PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379. Settings come from
# deploy/common.env; processes, logs and pid file live in $(COSTAWARE_HOME)/stack/.
.PHONY: stack stack-down
stack: $(VENV)/.installed ## start the stack; prints the UI address, the login and where logs are
	$(BIN)/costaware stack up

stack-down: ## stop every process `make stack` started and drop the databases it created
	$(BIN)/costaware stack down --drop

# Issue 8 §5: N waiting Elec2 weeks drained through a private `costaware stack` with 1, then 2
# Celery workers, for one model and for two at once: runs per hour, and a run's time split into
# task start-up vs work (bench/results/throughput.md; ~15 min, starts and stops its own stacks).
.PHONY: bench-throughput
bench-throughput: $(VENV)/.installed ## backlog throughput under Celery, 1 vs 2 workers
	$(BIN)/python bench/throughput.py
