# Mailroom: `make demo`, `make test`, `make dev`. Everything installs itself into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DAGSTER_HOME ?= $(abspath .dagster_home)
SCALE ?= 100000
SEED ?= 7
UNITS ?= 10000000
CUSTOMERS ?= 2000
VERBOSE ?=
PYTEST_ARGS ?=

INSTALLED := $(VENV)/.installed
MANIFEST := dbt/target/manifest.json

.PHONY: install lock prepare demo test test-fast lint dev receiver bench bench-end-to-end bench-identity bench-experiments bench-journeys bench-predictive bench-privacy quality-docs clean clean-data

install: $(INSTALLED)

# constraints.txt pins every package to the versions the tests last passed with; `make lock` renews it.
$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Mailroom needs Python 3.11 or newer; run make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# After changing dependencies in pyproject.toml: install without the pins, run make test, then commit.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^mailroom' > constraints.txt
	touch $(INSTALLED)

# The dbt manifest is prepared explicitly, never parsed at import time.
prepare: $(MANIFEST)

$(MANIFEST): $(INSTALLED) $(shell find dbt -name '*.sql' -o -name '*.yml' | grep -v '^dbt/target')
	cd $(CURDIR) && $(BIN)/dagster-dbt project prepare-and-package --file dagster_project/dbt_project.py
	@touch $@

# Instance settings (freshness policies on) live in config/dagster.yaml, copied once so a user's own
# edits win. (Not at the repository root: Dagster would warn that a dagster.yaml there is not used.)
INSTANCE := $(DAGSTER_HOME)/dagster.yaml
$(INSTANCE): config/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	test -f $@ || cp config/dagster.yaml $@

# VERBOSE=1 prints Dagster's and dbt's logs in the terminal instead of data/logs/demo-*.log.
demo: prepare $(INSTANCE)
	$(BIN)/python -m dagster_project.demo --customers $(CUSTOMERS) $(if $(VERBOSE),--verbose)

# The suite in two worker processes, one test file per worker (module fixtures such as the browser
# test's demo build are made once). WORKERS=0 runs it in this process.
WORKERS ?= 2
XDIST = $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile)

test: prepare lint
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but PostgreSQL, the slow scenarios, the browser and the demo builds.
test-fast: prepare
	$(BIN)/python -m pytest $(XDIST) -m "not postgres and not slow" --ignore=tests/test_ui_browser.py \
		--ignore=tests/test_demo_engagement.py $(PYTEST_ARGS)

# One style for the Python (ruff, configured in pyproject.toml) and one for the dbt SQL (sqlfluff, configured
# in .sqlfluff; `$(BIN)/sqlfluff fix <path>` applies its fixes). data-tests is linted once it exists.
lint: $(INSTALLED)
	$(BIN)/ruff check dagster_project reverse_etl tests benchmarks
	$(BIN)/sqlfluff lint --processes 2 $(wildcard dbt/models dbt/macros dbt/data-tests)

# `dagster dev` warns that `dg dev` supersedes it; `dg` needs a dg project layout Mailroom does not use
# (workspace.yaml instead), so that warning is silenced here and only here.
dev: prepare $(INSTANCE)
	$(BIN)/python -W 'ignore:Function `dev_command` is superseded' -m dagster dev -w workspace.yaml

# The SendGrid Event Webhook and one-click unsubscribe receiver (MAILROOM_RECEIVER_HOST/PORT, default 127.0.0.1:8025).
receiver: $(INSTALLED)
	$(BIN)/python -m reverse_etl.receiver

# GX Data Docs (HTML) from a fresh validation of every suite against the current warehouse.
quality-docs: $(INSTALLED)
	$(BIN)/python -m dagster_project.quality.docs

bench: prepare
	$(BIN)/python -m benchmarks.run --scale $(SCALE) --seed $(SEED)

# The daily job and the batch campaigns end to end through Dagster, as the schedules run them; then the
# daily job again the next day, after 1% new events.
bench-end-to-end: prepare
	$(BIN)/python -m benchmarks.run --scale $(SCALE) --seed $(SEED) --end-to-end --next-day

# Identity resolution alone: every identity model on a synthetic SCALE-customer graph, then with 20 long
# device/email chains on top; dbt model time per model, on WAREHOUSES (default duckdb; duckdb,postgres for both).
WAREHOUSES ?= duckdb
bench-identity: prepare
	$(BIN)/python -m benchmarks.identity --customers $(SCALE) --seed $(SEED) --warehouses $(WAREHOUSES)

# Experiment readouts of UNITS units (default 10M): a streamed CSV, and marts.experiment_units in each warehouse.
bench-experiments: prepare
	$(BIN)/python -m benchmarks.experiment_readout --rows $(UNITS) --record
	$(BIN)/python -m benchmarks.experiment_warehouse --rows $(UNITS)

# Journeys' event-to-send latency with a real dagster-daemon and the landing sensor: 200 signups landed
# as 20 files on a SCALE-customer warehouse, on WAREHOUSES (default duckdb; duckdb,postgres for both).
bench-journeys: prepare
	$(BIN)/python -m benchmarks.journeys_latency --scale $(SCALE) --seed $(SEED) --warehouses $(WAREHOUSES)

# The predictive layer at SCALE customers on DuckDB: the send-time and propensity models' dbt time,
# planning a campaign's send times, training and scoring the propensity models.
bench-predictive: prepare
	$(BIN)/python -m benchmarks.predictive --scale $(SCALE) --seed $(SEED)

# Privacy requests at SCALE customers on DuckDB: after the daily job and the batch campaigns end to end,
# 10 erasures and 1 access request in one run (seconds per step), then the audit chain at 1M entries.
bench-privacy: prepare
	$(BIN)/python -m benchmarks.privacy --scale $(SCALE) --seed $(SEED)

clean-data:
	rm -rf data/landing data/warehouse.duckdb data/warehouse.duckdb.wal data/quality-docs data/outbox data/crm.sqlite data/previews data/logs

clean: clean-data
	rm -rf $(VENV) dbt/target dbt/logs .dagster_home .pytest_cache
