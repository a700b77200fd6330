# The LMS suite. `make run` starts everything on this machine; `make test` tests everything.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := identity catalog enrollment automation reporting
PACKAGES := libs/common $(addprefix services/,$(SERVICES))
PYTEST := $(PY) -m pytest -q
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run unit integration e2e fuzz fuzz-ci chaos chaos-bounded test lint format bench asyncapi clean

help:
	@echo "make run          install, migrate and start every service on this machine"
	@echo "make test         unit, integration, end-to-end, bounded fuzz and bounded chaos"
	@echo "make fuzz         schemathesis against every service's API (300 examples per operation)"
	@echo "make chaos        the fault and attack suite at full size (make chaos-bounded: the CI size)"
	@echo "make unit | integration | e2e | fuzz-ci | chaos-bounded | lint | bench | asyncapi"

$(STAMP): requirements-dev.txt constraints.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements-dev.txt \
		-e libs/common $(addprefix -e services/,$(SERVICES))
	touch $@

install: $(STAMP)

run: install
	PATH="$(abspath $(VENV))/bin:$$PATH" deploy/local/run.sh

# Each package's tests run in their own pytest process: services never share an interpreter.
unit: install
	@set -e; for pkg in $(PACKAGES); do \
		if [ -d $$pkg/tests/unit ]; then echo "== unit: $$pkg"; $(PYTEST) $$pkg/tests/unit; fi; \
	done

integration: install
	@set -e; for pkg in $(PACKAGES); do \
		if [ -d $$pkg/tests/integration ]; then echo "== integration: $$pkg"; $(PYTEST) $$pkg/tests/integration; fi; \
	done

e2e: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PYTEST) --timeout 900 tests-e2e

# schemathesis against every service of a suite of its own (fuzz/run.py): no 5xx, responses as
# documented, invalid input refused. `fuzz-ci` is the bounded run `make test` includes.
FUZZ_EXAMPLES ?= 300
FUZZ_CI_EXAMPLES ?= 10

fuzz: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) fuzz/run.py --max-examples $(FUZZ_EXAMPLES) --stateful

fuzz-ci: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) fuzz/run.py --max-examples $(FUZZ_CI_EXAMPLES)

# The fault suite starts its own PostgreSQL and RabbitMQ (ports from LMS_E2E_PORT_BASE, default
# 23000); CHAOS_SCALE multiplies its counts (5,000 invoices at 1).
CHAOS_CI_SCALE ?= 0.02

chaos: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PYTEST) -s --timeout 3600 chaos

chaos-bounded: install
	PATH="$(abspath $(VENV))/bin:$$PATH" CHAOS_SCALE=$(CHAOS_CI_SCALE) $(PYTEST) -s --timeout 1200 chaos

test: unit integration e2e fuzz-ci chaos-bounded

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/common/src $(foreach s,$(SERVICES),services/$(s)/src) deploy
	$(PY) deploy/kubernetes/generate.py --check
	$(PY) deploy/check.py
	@if command -v promtool >/dev/null; then \
		echo "promtool check config + test rules"; \
		promtool check config deploy/prometheus/prometheus.yml && promtool test rules deploy/prometheus/alerts.test.yml; \
	else echo "skipped promtool (not installed; apt-get install prometheus): alert rules checked by deploy/check.py only"; fi
	@if docker compose version >/dev/null 2>&1; then echo "docker compose config -q"; docker compose config -q; \
	elif command -v docker-compose >/dev/null; then echo "docker-compose config -q"; docker-compose config -q; \
	else echo "skipped docker compose config (no compose here; apt-get install docker-compose)"; fi

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/run.py

asyncapi: install
	$(PY) -m lms_common.asyncapi $(SERVICES) > asyncapi.yaml

clean:
	rm -rf $(VENV) var
