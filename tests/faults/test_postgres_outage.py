"""PostgreSQL goes away under a live session, on a cluster of the test's own.

A real Daphne worker runs on its own PostgreSQL cluster (tests/faults/own_services.py),
with the stand-in as its upstream, and a browser's socket types to it over a real
WebSocket. The cluster is stopped with ``pg_ctl stop -m fast`` (every connection cut, as
an operator's restart does) and started again; the machine's shared PostgreSQL, which the
rest of the suite uses, is never touched. What was stored is read back from the cluster
with plain SQL.
"""

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings

from sessions_app.session.endings import STORAGE_MESSAGE
from standin import ThreadedStandIn
from tests.clients import Socket
from tests.conftest import require, running_workers, upstream_worker_env
from tests.faults.own_services import OwnPostgres
from tests.processes import ROOT, DaphneWorker, worker_env
from tests.records import eventually

pytestmark = pytest.mark.postgres

OUTAGE_S = 30.0  # how long the database stays away mid-session
TYPING_PAUSE_S = 0.5  # between two typed lines, as a person types
UNREACHABLE = "the database is unreachable"
BACK = "the database is back"
# A user and a logged-in browser of that user, made on the cluster by the site itself.
MAKE_USER = """
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_user("dora", password="dora-pass-123")
client = Client()
client.force_login(user)
print(settings.SESSION_COOKIE_NAME + "=" + client.cookies[settings.SESSION_COOKIE_NAME].value)
"""


def manage(database_url: str, *args: str) -> str:
    """Run ``manage.py`` on the cluster; what it printed."""
    env = worker_env(None, DATABASE_URL=database_url)
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnPostgres]:
    """A PostgreSQL cluster of this module's own, migrated, with one user."""
    require(OwnPostgres.available(), "the PostgreSQL server binaries are not installed")
    with OwnPostgres() as postgres:
        manage(postgres.url, "migrate", "--noinput")
        yield postgres


@pytest.fixture(scope="module")
def cookie(cluster: OwnPostgres) -> str:
    """The Cookie header of the user's browser, its session stored on the cluster."""
    return manage(cluster.url, "shell", "-c", MAKE_USER).strip().splitlines()[-1]


@pytest.fixture
def database(cluster: OwnPostgres) -> Iterator[OwnPostgres]:
    """The cluster, running again after the test whatever the test did to it."""
    yield cluster
    if not cluster.running():
        cluster.start()


def worker_on(database: OwnPostgres, upstream: ThreadedStandIn, tmp_path: Path, **env: str) -> Any:
    """A Daphne worker on the cluster (a context manager yielding it)."""
    on_cluster = upstream_worker_env(
        upstream, DATABASE_URL=database.url, SHARE_MAX_TEXTS_PER_MIN="600",
        SHARE_MAX_SESSIONS_PER_USER="5", **env,
    )  # fmt: skip
    return running_workers(on_cluster, tmp_path, "pg")


async def open_socket(worker: DaphneWorker, cookie: str) -> Socket:
    """The browser's share socket on ``worker``."""
    return await Socket.open(worker, cookie, django_settings.SHARE_MAX_MESSAGE_BYTES)


def query(database: OwnPostgres, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on the cluster's database."""
    with psycopg.connect(database.url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def stored_lines(database: OwnPostgres, session_id: str) -> list[tuple[int, str, str]]:
    """A session's transcript as (sequence, role, text), in sequence order."""
    return [
        (row[0], row[1], row[2])
        for row in query(
            database,
            "select sequence, role, text from sessions_app_transcriptentry"
            " where session_id = %s order by sequence",
            session_id,
        )
    ]


def session_row(database: OwnPostgres, session_id: str) -> tuple[str, str]:
    """A session's (status, end_reason)."""
    [(status, reason)] = query(
        database, "select status, end_reason from sessions_app_livesession where id = %s",
        session_id,
    )  # fmt: skip
    return status, reason


def browser_lines(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The lines the browser was shown, as (role, text): each echoed typed line, and each
    turn's model speech joined from its fragments."""
    lines: list[tuple[str, str]] = []
    model_turns: dict[int, list[str]] = {}
    for message in messages:
        if message["type"] != "transcript":
            continue
        if message["role"] == "user" and message.get("final"):
            lines.append(("user", message["text"]))
        elif message["role"] == "model":
            if message["turn"] not in model_turns:
                model_turns[message["turn"]] = []
                lines.append(("model", f"turn {message['turn']}"))
            model_turns[message["turn"]].append(message["text"])
    return [
        (role, "".join(model_turns[int(text[5:])]).strip() if role == "model" else text)
        for role, text in lines
    ]


async def stored_in_full(database: OwnPostgres, session_id: str, count: int) -> list[Any]:
    """The session's lines once ``count`` of them are stored."""

    async def all_there() -> list[Any] | None:
        lines = await asyncio.to_thread(stored_lines, database, session_id)
        return lines if len(lines) >= count else None

    return await eventually(all_there, timeout=60, interval=0.2, what=f"{count} lines stored")


async def type_for(socket: Socket, seconds: float, prefix: str) -> list[str]:
    """Type lines, each answered in full by the model, for ``seconds``; the lines typed."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    typed: list[str] = []
    while loop.time() < until:
        typed.append(f"{prefix} {len(typed) + 1}")
        await socket.say(typed[-1])
        await asyncio.sleep(TYPING_PAUSE_S)  # pacing: a person typing, not a wait
    return typed


async def test_a_30_second_outage_mid_session_loses_no_turn(
    database: OwnPostgres, cookie: str, upstream: ThreadedStandIn, tmp_path: Path
) -> None:
    # Rows not stamped for 20 s count as lost: less than the outage, so the session
    # survives a stale sweep after it only if its row is stamped as soon as it is back.
    with worker_on(database, upstream, tmp_path, SHARE_STALE_AFTER_S="20") as (worker,):
        socket = await open_socket(worker, cookie)
        session_id = await socket.start()
        typed = [f"before {n}" for n in (1, 2, 3)]
        for text in typed:
            await socket.say(text)
        await stored_in_full(database, session_id, 2 * len(typed))

        await asyncio.to_thread(database.stop)
        during = await type_for(socket, OUTAGE_S, "during")
        await asyncio.to_thread(database.start)
        loop = asyncio.get_running_loop()
        back_at = loop.time()
        await stored_in_full(database, session_id, 2 * (len(typed) + len(during)))
        recovery_s = loop.time() - back_at  # a figure, printed below
        after = [f"after {n}" for n in (1, 2, 3)]
        for text in after:
            await socket.say(text)
        typed += during + after

        lines = await stored_in_full(database, session_id, 2 * len(typed))
        assert [line[0] for line in lines] == list(range(1, 2 * len(typed) + 1))
        assert [line[1:] for line in lines] == browser_lines(socket.messages)
        assert [text for _, role, text in lines if role == "user"] == typed

        other = await open_socket(worker, cookie)
        await other.start()  # runs the stale sweep, on rows not stamped for 20 s
        await other.stop()
        assert await asyncio.to_thread(session_row, database, session_id) == ("active", "")
        await socket.say("after the sweep")
        await socket.stop()
        assert await asyncio.to_thread(session_row, database, session_id) == (
            "ended", "client_stop",
        )  # fmt: skip
        log = worker.log()
        assert log.count(f"Session {session_id}: {UNREACHABLE}") == 1
        assert log.count(f"Session {session_id}: {BACK}") == 1
        stored = len(await asyncio.to_thread(stored_lines, database, session_id))
        print(  # noqa: T201 - the figures of the fault table
            f"postgres outage {OUTAGE_S:g} s: {len(during)} turns ({2 * len(during)} lines)"
            f" through the outage, {2 * (len(typed) + 1) - stored} lines lost;"
            f" all stored {recovery_s:.1f} s after the restart"
        )


async def type_until_ended(socket: Socket, most: int) -> tuple[list[str], dict[str, Any]]:
    """Type lines until the session ends (at most ``most``); the lines typed and the end."""
    typed: list[str] = []
    for number in range(1, most + 1):
        typed.append(f"while down {number}")
        await socket.send_json(type="text", text=typed[-1])
        seen = await socket.until(
            lambda m: m["type"] == "turn_complete" or m.get("state") == "ended"
        )
        if seen[-1]["type"] == "status":
            return typed, seen[-1]
    raise AssertionError(f"the session did not end after {most} lines")


async def test_reaching_the_bound_ends_the_session_with_every_line_kept(
    database: OwnPostgres, cookie: str, upstream: ThreadedStandIn, tmp_path: Path
) -> None:
    with worker_on(database, upstream, tmp_path, SHARE_UNSAVED_LINES_MAX="6") as (worker,):
        socket = await open_socket(worker, cookie)
        session_id = await socket.start()
        await socket.say("stored first")
        await stored_in_full(database, session_id, 2)

        await asyncio.to_thread(database.stop)
        typed, ended = await type_until_ended(socket, most=10)
        # Six lines may wait; the seventh (the fourth line typed) ends the session.
        assert len(typed) == 4
        assert (ended["reason"], ended["message"]) == ("storage_unavailable", STORAGE_MESSAGE)
        assert await socket.close_code() == 4503  # told while the database is still away
        await asyncio.to_thread(database.start)

        shown = browser_lines(socket.messages)
        lines = await stored_in_full(database, session_id, len(shown))
        assert [line[0] for line in lines] == list(range(1, len(shown) + 1))
        assert [line[1:] for line in lines] == shown
        assert [text for _, role, text in lines if role == "user"] == ["stored first", *typed]

        async def finished() -> tuple[str, str] | None:
            row = await asyncio.to_thread(session_row, database, session_id)
            return None if row[0] == "active" else row

        assert await eventually(finished, timeout=30, interval=0.2) == (
            "failed", "storage_unavailable",
        )  # fmt: skip
        active = "select count(*) from sessions_app_livesession where status = 'active'"
        assert await asyncio.to_thread(query, database, active) == [(0,)]
        print(  # noqa: T201 - the figures of the fault table
            f"postgres bound reached: {len(lines)} of {len(shown)} lines stored,"
            f" {len(shown) - len(lines)} lost"
        )


async def start_once(socket: Socket) -> dict[str, Any]:
    """Ask for a session; the live status or the error that refused it."""
    await socket.send_json(type="start", mode="audio", voice="Puck")
    seen = await socket.until(
        lambda m: m["type"] == "error" or (m["type"] == "status" and m["state"] == "live")
    )
    return seen[-1]


async def test_a_start_while_the_database_is_down_is_refused_and_the_socket_goes_on(
    database: OwnPostgres, cookie: str, upstream: ThreadedStandIn, tmp_path: Path
) -> None:
    count = "select count(*) from sessions_app_livesession"
    [(before,)] = await asyncio.to_thread(query, database, count)
    with worker_on(database, upstream, tmp_path) as (worker,):
        socket = await open_socket(worker, cookie)
        await asyncio.to_thread(database.stop)
        refused = await start_once(socket)
        assert refused["type"] == "error"
        assert refused["code"] == "storage_unavailable"
        assert "database" in refused["message"]
        await asyncio.to_thread(database.start)

        async def live() -> dict[str, Any] | None:
            answer = await start_once(socket)
            if answer["type"] == "error":
                assert answer["code"] == "storage_unavailable", answer
                await asyncio.sleep(0.5)  # pacing between two starts, as a person retries
                return None
            return answer

        started = await eventually(live, timeout=40, what="a start once the database is back")
        await socket.say("after the outage")
        await socket.stop()
        session_id = started["session_id"]
        assert await asyncio.to_thread(session_row, database, session_id) == (
            "ended", "client_stop",
        )  # fmt: skip
        assert [m for m in socket.messages if m.get("code") == "internal_error"] == []
        # Nothing was stored for the refused starts: the database was away.
        assert await asyncio.to_thread(query, database, count) == [(before + 1,)]
