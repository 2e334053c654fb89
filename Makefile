# The project's verbs: run, test, lint, bench. Each sets itself up on a bare machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

# Tests and benchmarks run on PostgreSQL and Redis; override either URL from the environment.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/retention_crm
TEST_BROKER_URL ?= redis://127.0.0.1:6379/0
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/retention_crm_bench
CHROMIUM ?= /usr/bin/chromium

.PHONY: run demo db-start db-stop test lint format bench browser venv clean

# The demo needs only the runtime requirements; tests and linters add the development ones.
# uv installs the same pins in a fraction of pip's time (a cold `make run` is mostly installing);
# pip does it where uv cannot run. Both leave compiled bytecode, so no process start compiles the
# libraries again (where PYTHONDONTWRITEBYTECODE is set, every start would).
UV_VERSION := 0.13.9
INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r $(1) \
	|| $(BIN)/pip install --quiet --disable-pip-version-check -r $(1)

$(BIN)/.installed-run: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) || true
	$(call INSTALL,requirements.txt)
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run requirements-dev.txt
	$(call INSTALL,requirements-dev.txt)
	touch $@

venv: $(BIN)/.installed

## run: the demo with web, worker and beat; with no DATABASE_URL on the embedded PostgreSQL (var/postgres)
# DEBUG is off unless set (production is the default); the demo's processes run with it on.
run demo: export DEBUG ?= true
run: $(BIN)/.installed-run
	@if [ -n "$$DATABASE_URL" ]; then $(MAKE) --no-print-directory demo; \
	else $(BIN)/python -m retention_crm.embedded_postgres run -- $(MAKE) --no-print-directory demo; fi

# What `make run` does once the database is up: migrate, seed once, the demo admin, then the
# three processes under one runner.
demo: $(BIN)/.installed-run
	$(BIN)/python manage.py prepare_demo
	@echo ""
	@echo "  Admin:    http://127.0.0.1:$(PORT)/admin/   (demo / demo)"
	@echo "  API docs: http://127.0.0.1:$(PORT)/api/docs/"
	@echo "  Ctrl-C stops web, worker, beat and the database."
	@echo ""
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start -f Procfile

## db-start / db-stop: the embedded PostgreSQL alone (for manage.py commands without the demo)
db-start: $(BIN)/.installed-run
	$(BIN)/python -m retention_crm.embedded_postgres start

db-stop: $(BIN)/.installed-run
	$(BIN)/python -m retention_crm.embedded_postgres stop

## browser: Debian's chromium for the browser tests (installed once)
browser:
	@test -x $(CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

## test: the whole suite on PostgreSQL and Redis
test: venv browser
	DEBUG=true DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) CHROMIUM=$(CHROMIUM) \
		$(BIN)/pytest -n 2 -p no:logging $(PYTEST_ARGS)

## lint: ruff, then the type checker (configured in pyproject.toml; the settings load with DEBUG on)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=true $(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: load 1M customers / 10M purchases into PostgreSQL (see bench/README.md)
bench: venv
	DEBUG=true DATABASE_URL=$(BENCH_DATABASE_URL) $(BIN)/python bench/generate.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache .mypy_cache
