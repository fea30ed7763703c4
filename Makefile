# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test deploy-test bench bench-cost lint install browsers nginx axe screenshots migrate clean

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
	$(PY) -m assistant_site.serve --bind $(HOST) --port $(PORT) assistant_site.asgi:application

## test: the whole suite (unit, integration, end-to-end in headless Chromium)
test: export DJANGO_DEBUG ?= 0
test: export DJANGO_ALLOWED_HOSTS ?= testserver,localhost,127.0.0.1
test: $(STAMP) browsers nginx axe
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

## bench-cost: what a session costs under each frame policy (bench/cost.py), on the real
## page in Debian's Chromium against the stand-in's billing; writes docs/cost.md and cost.png
bench-cost: $(STAMP) browsers
	$(PY) -m bench.cost $(BENCH_COST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	GEMINI_OFFLINE_DEMO=1 DJANGO_SECRET_KEY=lint DJANGO_ALLOWED_HOSTS=localhost $(PY) -m mypy

## browsers: Debian's Chromium for the end-to-end tests (Playwright drives it)
browsers:
	@bash deploy/ensure-chromium.sh

## axe: axe-core, pinned in tests/e2e/axe/package-lock.json, for the accessibility e2e test
AXE := tests/e2e/axe
axe: $(AXE)/node_modules/.package-lock.json

$(AXE)/node_modules/.package-lock.json: $(AXE)/package.json $(AXE)/package-lock.json
	npm ci --prefix $(AXE) --no-audit --no-fund
	touch $@

## screenshots: docs/screenshots/ from the real pages (the stand-in answers), in Chromium,
## with a CJK font (Debian's fonts-wqy-zenhei) for the Chinese one
screenshots: $(STAMP) browsers
	@fc-list :lang=zh | grep -q . || apt-get install -y --no-install-recommends fonts-wqy-zenhei
	$(PY) -m bench.screenshots

## nginx: Debian's nginx for the deployment smoke test (tests/deploy runs it, never as a service)
nginx:
	@bash deploy/ensure-nginx.sh

## messages: collect every translatable string into locale/zh_Hans/LC_MESSAGES/django.po
## (templates, Python) and djangojs.po (static/js), then compile the .mo files the site
## serves (kept in the repository, so running the site and the tests needs no gettext)
MESSAGES_IGNORE := $(foreach p,.venv standin tests bench var staticfiles node_modules,--ignore=$(p) --ignore='$(p)/*')
MANAGE := DJANGO_SECRET_KEY=messages DJANGO_ALLOWED_HOSTS=localhost GEMINI_OFFLINE_DEMO=1 $(PY) manage.py
.PHONY: messages
messages: $(STAMP)
	$(MANAGE) makemessages --locale zh_Hans --domain django --no-obsolete $(MESSAGES_IGNORE)
	$(MANAGE) makemessages --locale zh_Hans --domain djangojs --extension js --no-obsolete $(MESSAGES_IGNORE)
	$(MANAGE) compilemessages --locale zh_Hans --ignore=.venv

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
