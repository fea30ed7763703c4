"""Redis restarted mid-session: live sessions go on, and control works again once it is back.

The real test runs two Daphne workers on a Redis of its own (tests/faults/own_services.py),
with a live session on each, and restarts that Redis empty while lines are typed: the
sessions go on with every turn stored, an admin "end now" during the outage is refused
with a message (the session stays live), and once Redis is back the consumers have
re-joined their groups (the admin's "end now" from the other worker reaches them), the
per-user limit holds, and disconnecting leaves nothing active and no consumer running.

The in-process tests drive the real consumer through the ASGI stack on a fake channel
layer (no Redis restart can be timed to the call from outside): an in-memory layer whose
calls raise redis-py's ConnectionError a given number of times, as channels_redis lets it
through, and whose restart forgets every group.
"""

import asyncio
import contextlib
import itertools
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers
from django.conf import settings as django_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from sessions_app import control
from sessions_app.models import LiveSession
from standin import StandIn, ThreadedStandIn
from tests.clients import Socket, admin_end_now
from tests.conftest import Browser, login_cookie, require, running_workers, upstream_worker_env
from tests.faults.own_services import REDIS_SERVER, OwnRedis
from tests.processes import DaphneWorker
from tests.records import ended_session, eventually, stored_unnumbered

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGE_WARNING = "Channel layer unreachable"
RECOVERED = "Channel layer reachable again"
UNREACHABLE_MESSAGE = "the channel layer (Redis) is unavailable"
OUTAGE_S = 3.0  # how long Redis stays down, lines typed all along
LINE_EVERY_S = 0.2


# --- in process, on a layer that fails on cue -----------------------------------------------


class RestartingLayer(InMemoryChannelLayer):
    """An in-memory layer that fails like a restarting Redis.

    :meth:`restart` forgets every group (Redis restarted empty) and drops the receive in
    flight; that and the next calls, ``failures`` in all, raise redis-py's
    ConnectionError. ``calls`` records each call as (operation, group or channel).
    """

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 0
        self.dropped = asyncio.Event()
        self.calls: list[tuple[str, str]] = []

    def restart(self, failures: int) -> None:
        """Forget the groups, drop the receive in flight; fail ``failures`` calls."""
        self.groups.clear()
        self.failures_left = failures
        self.dropped.set()

    def _call(self, operation: str, name: str) -> None:
        """Record a call; raise while failures are left."""
        self.calls.append((operation, name))
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RedisConnectionError("Connection closed by server.")

    async def receive(self, channel: str) -> dict[str, Any]:
        """Receive, unless a restart drops the call first."""
        self._call("receive", channel)
        receiving = asyncio.ensure_future(super().receive(channel))
        dropping = asyncio.ensure_future(self.dropped.wait())
        done, _ = await asyncio.wait({receiving, dropping}, return_when=asyncio.FIRST_COMPLETED)
        dropping.cancel()
        if receiving in done:
            return dict(receiving.result())
        receiving.cancel()
        self.dropped.clear()
        self.failures_left -= 1
        raise RedisConnectionError("Connection closed by server.")

    async def group_add(self, group: str, channel: str) -> None:
        """Join, unless failing."""
        self._call("group_add", group)
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Leave, unless failing."""
        self._call("group_discard", group)
        await super().group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send to a group, unless failing."""
        self._call("group_send", group)
        await super().group_send(group, message)


@pytest.fixture
def layer() -> Iterator[RestartingLayer]:
    """The restarting layer as this process's default channel layer."""
    fake = RestartingLayer()
    old = channel_layers.set("default", fake)
    try:
        yield fake
    finally:
        if old is None:
            channel_layers.backends.pop("default", None)
        else:
            channel_layers.set("default", old)


def recoveries() -> list[asyncio.Task[Any]]:
    """The tasks of this loop still running a layer recovery."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "LayerLink._recover" in repr(task.get_coro())
    ]


def joined(layer: RestartingLayer, group: str) -> Any:
    """A check: whether ``group`` has a member on ``layer``."""

    async def check() -> bool:
        return bool(layer.groups.get(group))

    check.__qualname__ = f"{group} has a member"
    return check


async def recovering() -> bool:
    """Whether a layer recovery is running."""
    return bool(recoveries())


async def test_the_consumer_waits_out_a_restart_and_rejoins_its_group(
    layer: RestartingLayer, cookie: str, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    session_id = (await browser.start())["session_id"]
    group = control.session_group(session_id)
    assert len(layer.groups[group]) == 1

    caplog.set_level(logging.INFO, logger="sessions_app.control")
    layer.restart(failures=2)  # the receive in flight, then the first re-join
    await browser.send(type="text", text="during the restart")
    await browser.expect("turn_complete", turn=1)
    await eventually(joined(layer, group))
    assert [call for call in layer.calls if call[0] == "group_add"] == [("group_add", group)] * 3

    await control.request_end(session_id, reason="admin_ended", message="Bye.")
    ended = await browser.expect("status", state="ended")
    assert (ended["reason"], ended["message"]) == ("admin_ended", "Bye.")
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == control.__name__]
    assert [level for level, _ in logged] == [logging.WARNING, logging.INFO]  # once per outage
    assert logged[0][1].startswith(OUTAGE_WARNING)
    assert logged[1][1].startswith(RECOVERED)
    await browser.close()


async def test_a_start_while_the_layer_is_down_joins_the_group_once_it_is_back(
    layer: RestartingLayer, cookie: str, standin: StandIn
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    layer.failures_left = 3  # the start's group_add and two re-joins
    live = await browser.start()
    group = control.session_group(live["session_id"])
    await eventually(joined(layer, group))
    assert layer.failures_left == 0

    await control.request_end(live["session_id"], reason="admin_ended", message="Bye.")
    assert (await browser.expect("status", state="ended"))["reason"] == "admin_ended"
    await browser.close()


async def test_a_disconnect_during_an_outage_ends_the_session_and_the_retrying(
    layer: RestartingLayer, cookie: str, standin: StandIn
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    layer.restart(failures=10**6)  # down for good
    await eventually(recovering)
    with pytest.raises(control.LayerUnavailable):
        await control.request_end(live["session_id"], reason="admin_ended", message="Bye.")

    await browser.close()
    session = await ended_session(live["session_id"])
    assert (session.status, session.end_reason) == ("ended", "client_disconnect")
    assert browser.ws.future.done()
    assert not browser.ws.future.cancelled()  # it ended by itself
    assert recoveries() == []


# --- two Daphne workers on a Redis of the test's own ----------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of this test's own, killed after."""
    require(REDIS_SERVER is not None, "redis-server is not installed")
    server = OwnRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def workers(
    own_redis: OwnRedis, upstream: ThreadedStandIn, tmp_path: Path
) -> Iterator[list[DaphneWorker]]:
    """Two Daphne workers on the test's own Redis; one live session per user each."""
    env = upstream_worker_env(
        upstream,
        REDIS_URL=own_redis.url,
        SHARE_HEARTBEAT_S="0.5",
        SHARE_MAX_SESSIONS_PER_USER="1",
        SHARE_MAX_TEXTS_PER_MIN="600",  # the lines are typed faster than a person types
    )
    with running_workers(env, tmp_path, "a", "b") as started:
        yield started


class Typist:
    """The live sessions of the scenario and every line typed into them."""

    def __init__(self, sockets: dict[str, Socket]) -> None:
        self.sockets = sockets
        self.typed: dict[str, list[str]] = {session_id: [] for session_id in sockets}

    async def lines(self, label: str, count: int) -> int:
        """Type ``count`` lines into every session, each answered in full; lines typed."""
        for index in range(count):
            for session_id, socket in self.sockets.items():
                text = f"{label} {index} in {session_id[:8]}"
                await socket.say(text)
                self.typed[session_id].append(text)
        return count * len(self.sockets)

    async def lines_for(self, label: str, seconds: float) -> int:
        """Type a line into every session every ``LINE_EVERY_S`` for ``seconds``; lines typed."""
        loop = asyncio.get_running_loop()
        until, typed = loop.time() + seconds, 0
        while loop.time() < until:
            typed += await self.lines(f"{label} {typed}", 1)
            await asyncio.sleep(LINE_EVERY_S)  # pacing, not a wait: a person typing
        return typed

    async def lost(self) -> int:
        """How many typed lines are not stored as whole turns, once the last turns' writes
        (made in the background just after each turn completes) had time to land."""

        async def none_missing() -> bool:
            return await self.missing() == 0

        with contextlib.suppress(AssertionError):
            await eventually(none_missing, timeout=5)
        return await self.missing()

    async def missing(self) -> int:
        """How many typed lines are not stored, in order, each followed by a model line."""
        missing = 0
        for session_id, typed in self.typed.items():
            _, lines = await stored_unnumbered(session_id)
            turns = [
                text
                for (role, source, text), after in itertools.pairwise(lines)
                if (role, source) == ("user", "typed") and after[0] == "model"
            ]
            assert turns == typed[: len(turns)]  # in order, no duplicate
            missing += len(typed) - len(turns)
        return missing


def logged(workers: list[DaphneWorker], text: str) -> Any:
    """A check: whether every worker's log holds ``text``."""

    async def check() -> bool:
        return all(text in worker.log() for worker in workers)

    check.__qualname__ = f"every worker logged {text!r}"
    return check


async def is_active(session_id: str) -> bool:
    """Whether the session's row is still active."""
    get = database_sync_to_async(LiveSession.objects.get)
    return bool((await get(pk=session_id)).status == LiveSession.Status.ACTIVE)


def max_bytes() -> int:
    """The largest message the workers take, as their hello announces it."""
    return int(django_settings.SHARE_MAX_MESSAGE_BYTES)


async def open_sockets(workers: list[DaphneWorker], *users: Any) -> dict[str, Socket]:
    """One live session per user, the n-th user's on the n-th worker, by session id."""
    sockets: dict[str, Socket] = {}
    for worker, user in zip(workers, users, strict=True):
        cookie = await database_sync_to_async(login_cookie)(user)
        socket = await Socket.open(worker, cookie, max_bytes())
        sockets[await socket.start()] = socket
    return sockets


async def restart_redis(
    own_redis: OwnRedis, workers: list[DaphneWorker], typist: Typist, admin_cookie: str
) -> tuple[int, int]:
    """Stop Redis, type and try the admin's end meanwhile, start it again, type again;
    the lines typed while it was down and after it came back."""
    alice_session = next(iter(typist.sockets))
    own_redis.stop()
    await eventually(logged(workers, OUTAGE_WARNING), timeout=15)
    page = await asyncio.to_thread(admin_end_now, workers[1], admin_cookie, alice_session)
    assert UNREACHABLE_MESSAGE in page
    assert "Asked 0 live session(s) to end." in page
    assert await is_active(alice_session)  # nothing ended that did not end
    typed = await typist.lines_for("during", OUTAGE_S)
    own_redis.start()
    await eventually(logged(workers, RECOVERED), timeout=15)
    return typed, await typist.lines("after", 2)


@pytest.mark.redis
async def test_two_workers_go_on_through_a_redis_restart_and_control_works_after(
    own_redis: OwnRedis, workers: list[DaphneWorker], user: Any, other_user: Any, admin_user: Any
) -> None:
    typist = Typist(await open_sockets(workers, user, other_user))
    admin_cookie = await database_sync_to_async(login_cookie)(admin_user)
    await typist.lines("before", 2)
    during, after = await restart_redis(own_redis, workers, typist, admin_cookie)
    lost = await typist.lost()
    print(  # noqa: T201 - the figures of the fault table
        f"redis restart: {during + after} turns went through it ({during} while Redis was"
        f" down, {after} after it came back), {lost} lost"
    )
    assert during > 2 * 2  # lines were typed into both sessions while Redis was down
    assert lost == 0

    alice_session = next(iter(typist.sockets))
    page = await asyncio.to_thread(admin_end_now, workers[1], admin_cookie, alice_session)
    assert "Asked 1 live session(s) to end." in page
    seen = await typist.sockets[alice_session].until(lambda m: m.get("state") == "ended")
    assert seen[-1]["reason"] == "admin_ended"
    await check_the_limit_and_leave(workers, typist, user, other_user)


async def check_the_limit_and_leave(
    workers: list[DaphneWorker], typist: Typist, user: Any, other_user: Any
) -> None:
    """The per-user limit (1) refuses Bob a second session and lets Alice start again;
    after every socket closes, nothing is active and nothing failed in either worker."""
    bob_cookie = await database_sync_to_async(login_cookie)(other_user)
    bob_again = await Socket.open(workers[0], bob_cookie, max_bytes())
    await bob_again.send_json(type="start", mode="audio")
    refused = await bob_again.until(lambda m: m["type"] == "error")
    assert refused[-1]["code"] == "too_many_sessions"
    alice_cookie = await database_sync_to_async(login_cookie)(user)
    alice_again = await Socket.open(workers[1], alice_cookie, max_bytes())
    session_ids = [*typist.sockets, await alice_again.start()]

    for socket in [*typist.sockets.values(), bob_again, alice_again]:
        await socket.ws.close()
    for session_id in session_ids:
        await ended_session(session_id)
    active = database_sync_to_async(LiveSession.objects.filter(status="active").count)
    assert await active() == 0
    for worker in workers:
        assert await asyncio.to_thread(worker.signal, signal.SIGTERM) == 0
        log = worker.log()
        assert "Server shutdown: ending session" not in log  # none was left for it to end
        assert "Exception inside application" not in log
