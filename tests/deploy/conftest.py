"""Fixtures of the deployment smoke test: collected static files, two Daphne workers on the
real Redis and the test database (PostgreSQL, as in production), and nginx with
deploy/nginx.conf in front of them."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from standin import ThreadedStandIn
from tests.conftest import TEST_API_KEY, require
from tests.deploy.stack import NGINX, Nginx, venv_path
from tests.processes import ROOT, DaphneWorker, worker_env

POSTGRESQL_ENGINE = "django.db.backends.postgresql"
METRICS_TOKEN = "deploy-test-metrics-token"


def require_postgresql(databases: dict[str, dict[str, object]]) -> None:
    """The production database: skip locally on any other one, fail with CI=true."""
    engine = str(databases["default"]["ENGINE"])
    require(
        engine == POSTGRESQL_ENGINE,
        f"the deployment smoke test needs PostgreSQL, as in production; the test database is "
        f"{engine} (export DATABASE_URL=postgres://USER@HOST:5432/NAME)",
    )


@pytest.fixture(scope="session")
def postgresql() -> None:
    """The workers share the test database; it must be PostgreSQL (checked before any
    database is set up, so that a run on SQLite stops here)."""
    require_postgresql(settings.DATABASES)


@pytest.fixture(scope="session")
def static_root(
    postgresql: None, tmp_path_factory: pytest.TempPathFactory, django_db_setup: None
) -> Path:
    """Run deploy/release.sh (the compose service "migrate") against the test database:
    migrate, collectstatic into a fresh directory, sweep_sessions."""
    root = tmp_path_factory.mktemp("static")
    result = subprocess.run(
        ["deploy/release.sh"],
        cwd=ROOT,
        env=worker_env(DJANGO_STATIC_ROOT=str(root), PATH=venv_path()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "static files copied" in result.stdout, result.stdout
    assert "abandoned session(s) as interrupted" in result.stdout, result.stdout
    return root


@pytest.fixture
def nginx_binary() -> Path:
    """Debian's nginx (deploy/ensure-nginx.sh installs it for `make test`)."""
    require(NGINX.exists(), f"{NGINX} is missing (make nginx, or apt-get install nginx-light)")
    return NGINX


@pytest.fixture
def workers(
    postgresql: None, redis_url: str, upstream: ThreadedStandIn, static_root: Path, tmp_path: Path
) -> Iterator[list[DaphneWorker]]:
    """Two Daphne workers configured as docker-compose.yml's web1 and web2, but over plain
    HTTP (no redirect to HTTPS, no Secure-only cookies) and on this machine's services."""
    env = worker_env(
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_TRUSTED_PROXY_COUNT="1",
        DJANGO_SERVE_STATIC="0",
        DJANGO_STATIC_ROOT=str(static_root),
        REDIS_URL=redis_url,
        GEMINI_API_KEY=TEST_API_KEY,
        GEMINI_API_BASE_URL=upstream.base_url,
        GEMINI_CA_BUNDLE=str(upstream.ca_path),
        METRICS_TOKEN=METRICS_TOKEN,
    )
    # The workers' own database is the test database, on PostgreSQL.
    assert env["DATABASE_URL"].startswith("postgres://"), env["DATABASE_URL"]
    started: list[DaphneWorker] = []
    try:
        for name in ("web1", "web2"):
            started.append(DaphneWorker(name, env, tmp_path / f"{name}.log").start())
        yield started
    finally:
        for worker in started:
            worker.stop()
            print(f"--- worker {worker.name} log ---\n{worker.log()}")  # noqa: T201 - shown on failure


@pytest.fixture
def nginx(
    nginx_binary: Path, workers: list[DaphneWorker], static_root: Path, tmp_path: Path
) -> Iterator[Nginx]:
    """nginx with deploy/nginx.conf in front of both workers."""
    server = Nginx(tmp_path / "nginx", workers, static_root)
    try:
        yield server.start()
    finally:
        server.stop()
        print(server.logs())  # noqa: T201 - shown on failure


@pytest.fixture
def tls_nginx(
    nginx_binary: Path, workers: list[DaphneWorker], static_root: Path, tmp_path: Path
) -> Iterator[Nginx]:
    """nginx as docker-compose.tls.yml runs it: deploy/nginx.conf including
    deploy/nginx-tls.conf, with a trustme certificate for 127.0.0.1."""
    server = Nginx(tmp_path / "nginx-tls", workers, static_root, tls=True)
    try:
        yield server.start()
    finally:
        server.stop()
        print(server.logs())  # noqa: T201 - shown on failure
