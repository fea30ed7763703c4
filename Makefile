# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test deploy-test bench lint install browsers nginx migrate clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

## run: serve HTTP and WebSocket with Daphne on http://$(HOST):$(PORT) (DEBUG, SQLite,
## in-memory channel layer and the offline model unless the environment says otherwise)
run: export DJANGO_DEBUG ?= 1
run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_dev_admin
	$(PY) manage.py sweep_sessions
	$(PY) -m daphne --bind $(HOST) --port $(PORT) assistant_site.asgi:application

## test: the whole suite (unit, integration, end-to-end in headless Chromium)
test: export DJANGO_DEBUG ?= 0
test: export DJANGO_ALLOWED_HOSTS ?= testserver,localhost,127.0.0.1
test: $(STAMP) browsers nginx
	@export DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')}"; \
	$(PY) -m ruff check . && GEMINI_OFFLINE_DEMO=1 $(PY) -m mypy && $(PY) -m pytest $(PYTEST_ARGS)

## deploy-test: only the deployment checks (tests/deploy): nginx from deploy/nginx.conf in
## front of two Daphne workers, and docker-compose.yml against the Compose Specification
deploy-test: export DJANGO_DEBUG ?= 0
deploy-test: export DJANGO_ALLOWED_HOSTS ?= testserver,localhost,127.0.0.1
deploy-test: $(STAMP) nginx
	@export DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')}"; \
	$(PY) -m pytest tests/deploy $(PYTEST_ARGS)

## bench: the benchmarks (bench/run.py): (a) the SDK direct, (b) a bare relay, (c) the site
## with one worker, then two behind nginx on Redis and PostgreSQL; writes docs/benchmarks.md
bench: $(STAMP) nginx
	$(PY) -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	GEMINI_OFFLINE_DEMO=1 DJANGO_SECRET_KEY=lint DJANGO_ALLOWED_HOSTS=localhost $(PY) -m mypy

## browsers: Debian's Chromium for the end-to-end tests (Playwright drives it)
browsers:
	@bash deploy/ensure-chromium.sh

## nginx: Debian's nginx for the deployment smoke test (tests/deploy runs it, never as a service)
nginx:
	@bash deploy/ensure-nginx.sh

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
