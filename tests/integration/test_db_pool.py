"""PostgreSQL connections come from a pool per worker, not one connection per query batch.

At 100 sessions on one worker, opening and closing a connection for every
database_sync_to_async call was the largest cost after the media (docs/benchmarks.md).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


def check(**env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` on PostgreSQL with ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    base.update(DJANGO_DEBUG="1", DATABASE_URL=POSTGRES, **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=base, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_the_pool_and_persistent_connections_exclude_each_other() -> None:
    refused = check(DJANGO_CONN_MAX_AGE="60")
    assert refused.returncode != 0
    assert "DJANGO_CONN_MAX_AGE must be 0 while the PostgreSQL pool is on" in refused.stderr
    assert check(DJANGO_CONN_MAX_AGE="60", DJANGO_DB_POOL_MAX="0").returncode == 0
    assert check().returncode == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
async def test_a_live_worker_thread_reuses_pooled_connections() -> None:
    require(connection.vendor == "postgresql", "the test database is not PostgreSQL")
    pool_options = connection.settings_dict["OPTIONS"]["pool"]
    assert pool_options["max_size"] >= 1

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("select pg_backend_pid()")
            return int(cursor.fetchone()[0])

    # Each call closes "old" connections around it, as for every session write: with the
    # pool that hands a pooled server connection back instead of opening a new one, so
    # more calls than the pool holds meet no more server processes than it holds.
    calls = 2 * pool_options["max_size"] + 1
    pids = [await database_sync_to_async(backend_pid)() for _ in range(calls)]
    assert len(set(pids)) <= pool_options["max_size"], pids
