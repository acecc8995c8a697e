# The Makefile is the interface: `make demo` and `make test` do all of their own set-up.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
# Local run history for `make demo`, `make run` and `make dev` (ignored by git).
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Without a pseudonymisation key, local targets run in demo mode (public key, synthetic data only).
ifeq ($(strip $(PARCOURS_PSEUDONYM_KEY_FILE)),)
LOCAL_ENV := PARCOURS_DEMO=1 DAGSTER_HOME=$(DAGSTER_HOME)
else
LOCAL_ENV := DAGSTER_HOME=$(DAGSTER_HOME)
endif

.PHONY: help install bytecode browser java postgres demo run dashboard dev test test-thorough lint typecheck pytest validate bench clean

help:
	@echo "make demo    generate a synthetic federation, run the pipeline, serve the dashboards on :8501"
	@echo "make test    lint, type-check and run the whole test suite"
	@echo "make test-thorough  the same, property tests drawing every example they ask for (tests/hypothesis_budget.py)"
	@echo "make dev     the Dagster UI on :3000 (asset graph, runs, checks)"
	@echo "make validate  the slow validation: studies on 100+ generated federations per scenario (docs/validation.md)"
	@echo "make bench   time the pipeline and its peers at 10k, 100k and 1M persons (docs/benchmarks.md)"
	@echo "make clean   remove generated data and local run history"

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (CI images, containers) nothing else ever
# caches it, and every process (a run, a test worker, a dashboard server) would compile each library it
# imports from source again: about half of the 13 s of CPU that importing Great Expectations, Dagster,
# Polars and DuckDB takes here (docs/benchmarks-notes.md, "Test suite and demo run").
$(VENV)/.synced: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced

# Our own modules' bytecode too (a second when up to date): test workers, CLI subprocesses and dashboard
# servers then load it instead of compiling 20,000 lines each.
bytecode: install
	@$(BIN)/python -m compileall -q pipelines dashboards quality >/dev/null

# Browser tests drive Debian's chromium: no browser can be downloaded here. The report's PDF test reads the
# printed words back with poppler's pdftotext.
browser:
	@{ command -v chromium && command -v pdftotext; } >/dev/null || { \
	  echo "installing Debian's chromium and poppler-utils for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium poppler-utils >/dev/null; }

# The Spark engine's tests (and PARCOURS_ENGINE=spark) need a Java runtime: Debian's, never a download.
java:
	@command -v java >/dev/null || { \
	  echo "installing Debian's Java runtime for the Spark engine"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq default-jre-headless >/dev/null; }

# The production instance's test starts a PostgreSQL server of its own (deploy/dagster.yaml): Debian's.
postgres:
	@{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the production instance's test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# Dagster's usage statistics off: nothing leaves this machine, and no banner interrupts a run.
$(DAGSTER_HOME):
	mkdir -p $@ && printf 'telemetry:\n  enabled: false\n' > $@/dagster.yaml

# Demo sign-in (one demo user per role) unless a real access map is given.
DEMO_PORT ?= 8501
DASHBOARD_ENV := $(if $(PARCOURS_ACCESS_FILE),,PARCOURS_AUTH=demo)

# The demo keeps no run history (Dagster writes each of a run's events to SQLite as it comes: about
# 10 s a run here); `make run` keeps it for `make dev`.
demo: install bytecode browser
	$(BIN)/parcours generate --force
	PARCOURS_DEMO=1 DAGSTER_HOME= $(BIN)/parcours run
	PARCOURS_AUTH=demo $(BIN)/streamlit run dashboards/streamlit_app.py --server.port $(DEMO_PORT)

run: install bytecode $(DAGSTER_HOME)
	$(LOCAL_ENV) $(BIN)/parcours run

dashboard: install
	$(DASHBOARD_ENV) $(BIN)/streamlit run dashboards/streamlit_app.py --server.port 8501

dev: install $(DAGSTER_HOME)
	$(LOCAL_ENV) $(BIN)/dagster dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The slow validation tier (hundreds of federations) runs from `make validate`, not here.
# TEST_WORKERS processes (pytest-xdist), each test file whole in one of them: a file's module fixtures
# (a Spark session, a Connect server, the quarters) are built once. Files go to the workers in collection
# order, the longest first (tests/conftest.py), not xdist's most-tests-first: that order started the Spark
# file last, alone. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
pytest: install bytecode browser java postgres
	@$(BIN)/pytest -m "not slow" $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: the suite is missing"; exit 1; fi; \
	exit $$status

test: lint typecheck
	$(BIN)/parcours contract-doc --check
	$(MAKE) --no-print-directory pytest

# Property tests draw a third of their examples in `make test`; here every one they ask for (after a change to a
# reader, the privacy guard or the disclosure rules).
test-thorough: lint typecheck
	$(BIN)/parcours contract-doc --check
	PARCOURS_HYPOTHESIS=thorough $(MAKE) --no-print-directory pytest

# Hours on a 2-core machine: every scenario and its null over VALIDATE_FEDERATIONS federations each,
# in VALIDATE_WORKERS processes; figures go to data/generated/validation/ and docs/validation.md by hand.
VALIDATE_FEDERATIONS ?= 100
VALIDATE_WORKERS ?= 2
validate: install
	PARCOURS_VALIDATE_FEDERATIONS=$(VALIDATE_FEDERATIONS) PARCOURS_VALIDATE_WORKERS=$(VALIDATE_WORKERS) \
	  nice -n 10 $(BIN)/pytest -m slow -p no:cacheprovider

# Unattended; hours at the default sizes on a 2-core machine. BENCH_ARGS overrides, e.g.
# make bench BENCH_ARGS="--persons 100000 --runs 3"
BENCH_ARGS ?=
bench: install bytecode
	PARCOURS_DEMO=1 $(BIN)/parcours bench $(BENCH_ARGS)

clean:
	rm -rf data/generated .dagster_home
