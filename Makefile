# Tether's quickstart commands. Needs only python3 (with venv) and make.
#
#   make run                      serve on SQLite (http://127.0.0.1:8000; HOST/PORT override)
#   make test                     the test suite, against PostgreSQL and Redis (see scripts/ensure-services)
#   make test ARGS="-k threading -x"
#   make test JOBS=0              the same in one process (JOBS: pytest-xdist's -n, default 3)
#   make test-clients             Tether driven by the Node openai SDK, the Vercel AI SDK and Codex CLI (node >= 20)
#   make lint                     ruff check, ruff format --check, mypy

PYTHON ?= python3
VENV   := .venv
PIP    := $(VENV)/bin/python -m pip -q --disable-pip-version-check
ARGS   ?=
# Test processes. Most of a test's time is spent waiting (on servers, workers, the database), so
# more processes than cores pay; see README "Tests".
JOBS   ?= 3

.PHONY: run test test-clients lint

run: $(VENV)/.stamp-run
	exec $(VENV)/bin/tether serve

test: $(VENV)/.stamp-dev
	scripts/ensure-services
	$(VENV)/bin/pytest -n $(JOBS) $(ARGS)

test-clients: $(VENV)/.stamp-dev
	$(VENV)/bin/python tests/clients/run.py

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# bin/pip, not bin/python: a venv whose creation failed half-way (no ensurepip) has a python but
# no pip, and must be created again.
$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml changes. The stamps live inside the venv, so deleting
# .venv starts over cleanly; a failed install leaves no stamp and is retried next time.
$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/pip
	$(PIP) install -e .
	touch $@

# The dev install is a superset of the run install, so it satisfies `make run` too.
$(VENV)/.stamp-dev: pyproject.toml | $(VENV)/bin/pip
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.stamp-run
