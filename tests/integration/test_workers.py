"""Several real Daphne processes sharing the real Redis channel layer and one database.

Each test starts worker processes on the test database, with the stand-in as their
upstream, and drives them over real WebSockets: the per-user limit across workers, the
admin's "End live session now" reaching another worker, SIGTERM and SIGKILL.
"""

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from websockets.asyncio.client import ClientConnection, connect

from sessions_app.models import LiveSession
from standin import ThreadedStandIn
from tests.clients import admin_end_now, expect, say, start_live
from tests.conftest import login_cookie, running_workers, upstream_worker_env
from tests.processes import DaphneWorker
from tests.records import eventually, stored_unnumbered

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workers(
    redis_url: str, upstream: ThreadedStandIn, tmp_path: Path
) -> Iterator[list[DaphneWorker]]:
    """Two Daphne workers, as production runs them behind nginx."""
    env = upstream_worker_env(
        upstream, REDIS_URL=redis_url, SHARE_HEARTBEAT_S="0.5", SHARE_MAX_SESSIONS_PER_USER="1"
    )
    with running_workers(env, tmp_path, "a", "b") as started:
        yield started


async def open_socket(worker: DaphneWorker, cookie: str) -> ClientConnection:
    """A browser's share socket on one worker."""
    ws = await connect(
        worker.ws_url,
        origin=worker.url,
        additional_headers={"Cookie": cookie},  # type: ignore[arg-type]
    )
    hello = await expect(ws, "hello")
    assert hello["voices"]
    return ws


async def test_per_user_limit_holds_across_two_workers(
    workers: list[DaphneWorker], user: Any
) -> None:
    cookie = await database_sync_to_async(login_cookie)(user)
    on_a = await open_socket(workers[0], cookie)
    on_b = await open_socket(workers[1], cookie)
    await start_live(on_a)
    await on_b.send(json.dumps({"type": "start", "mode": "audio"}))
    error = await expect(on_b, "error")
    assert error["code"] == "too_many_sessions"
    await on_a.send(json.dumps({"type": "stop"}))
    await expect(on_a, "status", state="ended")
    await start_live(on_b)  # the limit counts live sessions only
    await on_a.close()
    await on_b.close()
    reasons = await database_sync_to_async(
        lambda: sorted(LiveSession.objects.values_list("end_reason", flat=True))
    )()
    assert reasons == ["", "client_stop", "user_limit"]


async def test_admin_action_ends_a_session_held_by_another_worker(
    workers: list[DaphneWorker], user: Any, admin_user: Any, upstream: ThreadedStandIn
) -> None:
    cookie = await database_sync_to_async(login_cookie)(user)
    admin_cookie = await database_sync_to_async(login_cookie)(admin_user)
    ws = await open_socket(workers[0], cookie)
    session_id = await start_live(ws)
    await say(ws, "before the admin steps in")

    page = await asyncio.to_thread(admin_end_now, workers[1], admin_cookie, session_id)
    assert "Asked 1 live session(s) to end." in page

    ended = await expect(ws, "status", state="ended")
    assert ended["reason"] == "admin_ended"
    assert ended["message"] == "An administrator ended this session."
    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("ended", "admin_ended")
    assert lines[0] == ("user", "typed", "before the admin steps in")
    assert lines[1][:2] == ("model", "speech")
    await asyncio.to_thread(upstream.wait_for, lambda: upstream.connections[0].closed)
    await ws.close()


def idle_keep_alive_connection(worker: DaphneWorker) -> socket.socket:
    """A served HTTP/1.1 request whose connection stays open, left idle for a while."""
    sock = socket.create_connection(("127.0.0.1", worker.port), timeout=5)
    sock.sendall(
        b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    )
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # Not a wait for a condition: Daphne's application checker runs every second inside the
    # worker and shows nothing outside it; the connection must stay idle across one run.
    time.sleep(1.5)
    return sock


async def test_sigterm_flushes_the_transcript_and_ends_the_session(
    workers: list[DaphneWorker], user: Any
) -> None:
    cookie = await database_sync_to_async(login_cookie)(user)
    ws = await open_socket(workers[0], cookie)
    session_id = await start_live(ws)
    await say(ws, "first turn")
    # A turn in progress: its user line is not stored until the turn ends or is flushed.
    await ws.send(json.dumps({"type": "text", "text": "second turn"}))
    await expect(ws, "transcript", role="model")

    # An idle keep-alive HTTP connection (nginx keeps such connections to each worker)
    # once broke Daphne's shutdown; see assistant_site/daphne_shutdown.py.
    keep_alive = await asyncio.to_thread(idle_keep_alive_connection, workers[0])
    assert await asyncio.to_thread(workers[0].signal, signal.SIGTERM) == 0
    keep_alive.close()

    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("ended", "server_shutdown")
    texts = [text for _, _, text in lines]
    assert texts[0] == "first turn"
    assert "second turn" in texts
    assert "Cancelled 1 application instances for shutdown" in workers[0].log()
    assert "server_shutdown" in workers[0].log()
    await ws.close()


async def test_sigkill_then_sweep_marks_the_session_interrupted_with_completed_turns(
    workers: list[DaphneWorker], user: Any
) -> None:
    cookie = await database_sync_to_async(login_cookie)(user)
    ws = await open_socket(workers[0], cookie)
    session_id = await start_live(ws)
    await say(ws, "one")
    await say(ws, "two")

    # Each turn is written by a background task as soon as it completes; kill the worker
    # once the second one is in the database (a few milliseconds after turn_complete).
    async def both_turns_stored() -> bool:
        """Whether both turns' lines are in the database."""
        return len((await stored_unnumbered(session_id))[1]) >= 4

    await eventually(both_turns_stored, timeout=5)
    await asyncio.to_thread(workers[0].signal, signal.SIGKILL)
    session, _ = await stored_unnumbered(session_id)
    assert session.status == "active"  # nobody could mark it

    await database_sync_to_async(call_command)("sweep_sessions", "--stale-after", "0")

    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("interrupted", "worker_lost")
    assert [(role, text) for role, _, text in lines if role == "user"] == [
        ("user", "one"),
        ("user", "two"),
    ]
    assert [role for role, _, _ in lines] == ["user", "model", "user", "model"]
    # The other worker still serves: a new session starts there (the limit ignores the
    # swept session).
    other = await open_socket(workers[1], cookie)
    await start_live(other)
    await other.close()
