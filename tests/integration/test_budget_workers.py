"""The daily token budget holds across two real Daphne workers on Redis and the database.

Each worker counts the user's other sessions from the database, not from its memory: a
session on one worker ends when the user's sessions on both together reach the budget,
and a start on the other worker is refused afterwards.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from sessions_app.models import LiveSession, TranscriptEntry
from standin import ThreadedStandIn
from tests.clients import Socket
from tests.conftest import login_cookie, running_workers, upstream_worker_env
from tests.processes import DaphneWorker
from tests.records import eventually

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = 2600  # tokens a day; 90% is 2340
PROMPT, RESPONSE = 400, 100  # each turn's bill: the stand-in's fixed mode
MAX_MESSAGE_BYTES = 786432


@pytest.fixture
def workers(
    redis_url: str, upstream: ThreadedStandIn, tmp_path: Path
) -> Iterator[list[DaphneWorker]]:
    """Two production-like workers with a daily budget, on the Redis channel layer."""
    upstream.behaviour.prompt_tokens_per_turn = PROMPT
    upstream.behaviour.response_tokens_per_turn = RESPONSE
    env = upstream_worker_env(
        upstream, REDIS_URL=redis_url, SHARE_DAILY_TOKENS_PER_USER=str(BUDGET)
    )
    with running_workers(env, tmp_path, "a", "b") as started:
        yield started


async def stored_tokens(session_id: str, tokens: int) -> None:
    """Wait until the session's row holds ``tokens`` (each turn's totals are written at once,
    in the background, by the worker holding it)."""

    @database_sync_to_async
    def holds() -> bool:
        return LiveSession.objects.get(pk=session_id).total_tokens == tokens

    await eventually(holds, what=f"{session_id} stores {tokens} tokens")


def errors(socket: Socket) -> list[str]:
    """The error codes a socket was sent, in order."""
    return [m["code"] for m in socket.messages if m["type"] == "error"]


async def test_the_budget_counts_both_workers_and_ends_the_session_that_crosses_it(
    workers: list[DaphneWorker], user: Any
) -> None:
    cookie = await database_sync_to_async(login_cookie)(user)
    on_a = await Socket.open(workers[0], cookie, MAX_MESSAGE_BYTES)
    on_b = await Socket.open(workers[1], cookie, MAX_MESSAGE_BYTES)
    first = await on_a.start()
    for turn in range(3):  # 1500 tokens on worker a; the session stays live
        await on_a.say(f"on a, {turn}")
    await stored_tokens(first, 1500)
    second = await on_b.start()
    await on_b.say("on b, 0")  # 2000 together: under 90%
    await on_b.say("on b, 1")  # 2500 together, counted on b from a's stored row: a warning
    seen = await on_b.until(lambda m: m["type"] == "error")
    assert seen[-1]["code"] == "budget_warning"
    assert "2,500 of your 2,600 tokens" in seen[-1]["message"]
    before = on_b.messages[: on_b.messages.index(seen[-1])]
    assert [m["total_tokens"] for m in before if m["type"] == "usage"] == [500, 1000]
    await stored_tokens(second, 1000)

    await on_a.send_json(type="text", text="on a, 3")  # 3000: a ends, though a spent 2000
    seen = await on_a.until(lambda m: m["type"] == "status" and m["state"] == "ended")
    assert seen[-1]["reason"] == "budget_exhausted"
    assert "turn_complete" in [m["type"] for m in seen]  # the crossing turn is answered
    assert errors(on_a) == []  # 1500 + 1000 was under 90% at a's last check: no warning

    await on_b.send_json(type="text", text="on b, 2")
    seen = await on_b.until(lambda m: m["type"] == "status" and m["state"] == "ended")
    assert seen[-1]["reason"] == "budget_exhausted"

    await on_a.send_json(type="start", mode="audio")  # worker a refuses from the database
    refused = await on_a.until(lambda m: m["type"] == "error" and m["code"] != "budget_warning")
    assert refused[-1]["code"] == "budget_exhausted"

    rows = await database_sync_to_async(
        lambda: {
            str(s.pk): (s.status, s.end_reason, s.total_tokens) for s in LiveSession.objects.all()
        }
    )()
    assert rows.pop(first) == ("ended", "budget_exhausted", 4 * (PROMPT + RESPONSE))
    assert rows.pop(second) == ("ended", "budget_exhausted", 3 * (PROMPT + RESPONSE))
    assert list(rows.values()) == [("failed", "budget_exhausted", 0)]
    lines = await database_sync_to_async(
        lambda: [TranscriptEntry.objects.filter(session_id=s).count() for s in (first, second)]
    )()
    assert lines == [8, 6]  # every answered turn is stored, the crossing ones included
    await on_a.ws.close()
    await on_b.ws.close()
