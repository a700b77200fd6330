# The LMS suite. `make run` starts everything on this machine; `make test` tests everything.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERVICES := identity catalog enrollment automation reporting
PACKAGES := libs/common $(addprefix services/,$(SERVICES))
PYTEST := $(PY) -m pytest -q
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run unit integration e2e test lint format bench asyncapi clean

help:
	@echo "make run          install, migrate and start every service on this machine"
	@echo "make test         unit, integration and end-to-end tests"
	@echo "make unit | integration | e2e | lint | bench | asyncapi"

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
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PYTEST) tests-e2e

test: unit integration e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/common/src $(foreach s,$(SERVICES),services/$(s)/src)
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
