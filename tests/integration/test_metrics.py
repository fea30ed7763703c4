"""A worker's Prometheus metrics move by exactly what its sessions did.

A real Daphne worker with ``METRICS_TOKEN`` set serves ``/metrics``; the test scrapes it
as Prometheus does (a bearer token, the worker's own address) and reads it with
prometheus_client's own text parser, before and after real sessions through the real
SDK and the stand-in: one with a frame flood, microphone audio, two turns and a goAway
hand-over, then one the service refuses.
"""

import asyncio
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from assistant_site.metrics import MetricsEndpoint
from sessions_app import metrics
from sessions_app.models import LiveSession
from sessions_app.protocol import Kind
from standin import ThreadedStandIn
from tests.clients import Socket
from tests.conftest import login_cookie, running_workers, upstream_worker_env
from tests.processes import DaphneWorker
from tests.records import eventually, jpeg

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-test-token"
MAX_MESSAGE_BYTES = 786432
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def worker(upstream: ThreadedStandIn, tmp_path: Path) -> Iterator[DaphneWorker]:
    """One production-like worker with metrics on and one frame a second allowed."""
    env = upstream_worker_env(upstream, METRICS_TOKEN=TOKEN, SHARE_MAX_FRAMES_PER_S="1")
    with running_workers(env, tmp_path, "metrics") as started:
        yield started[0]


def fetch(worker: DaphneWorker, authorization: str | None) -> tuple[int, str]:
    """GET /metrics with that Authorization header (None: none); status and body."""
    headers = {} if authorization is None else {"Authorization": authorization}
    request = urllib.request.Request(f"{worker.url}/metrics", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def scrape(worker: DaphneWorker) -> Samples:
    """Every sample of the worker's page, parsed by prometheus_client."""
    status, text = fetch(worker, f"Bearer {TOKEN}")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, prefix: str) -> dict[tuple[str, ...], float]:
    """How much each sample whose name starts with ``prefix`` moved, by its label values;
    samples that did not move are left out."""
    changes = {}
    for (name, labels), value in after.items():
        if name.startswith(prefix):
            delta = value - before.get((name, labels), 0.0)
            if delta:
                changes[(name, *(v for _, v in sorted(labels)))] = delta  # by label name
    return changes


def billed_by_modality(
    upstream: ThreadedStandIn, connections: list[int]
) -> Counter[tuple[str, str]]:
    """The tokens the stand-in billed on ``connections``, by (direction, modality)."""
    billed: Counter[tuple[str, str]] = Counter()
    for index in connections:
        for usage in upstream.connections[index].usage:
            for key, direction in (("promptTokensDetails", "in"), ("responseTokensDetails", "out")):
                for detail in usage.get(key, []):
                    billed[(direction, detail["modality"])] += detail["tokenCount"]
    return billed


async def one_session(socket: Socket, upstream: ThreadedStandIn, worker: DaphneWorker) -> None:
    """A frame flood, a second of audio, a turn, a hand-over, a turn; the relay caught up."""
    await socket.start()
    for _ in range(6):  # the bucket holds 2 frames: 4 are dropped
        await socket.send(bytes([Kind.JPEG]) + jpeg(64, 48))
    warned = await socket.until(lambda m: m["type"] == "error")
    assert warned[-1]["code"] == "rate_limited"  # one warning for the flood
    for _ in range(10):  # 1.0 s of silence in 100 ms chunks
        await socket.send(bytes([Kind.AUDIO]) + bytes(3200))
    await socket.say("first")
    await asyncio.to_thread(upstream.go_away, 5.0, close=False)
    await socket.until(lambda m: m["type"] == "status" and m["state"] == "handed_over")
    await socket.say("second")

    async def relay_caught_up() -> bool:
        """Every server message the stand-in sent was relayed (setupComplete aside)."""
        sent = sum(len(record.replies) - 1 for record in upstream.connections)
        down = scrape(worker).get(
            ("screenshare_relay_latency_seconds_count", frozenset({("direction", "down")})), 0
        )
        return down == sent

    await eventually(relay_caught_up, timeout=10)


async def test_each_metric_moves_by_what_the_sessions_did(
    worker: DaphneWorker, upstream: ThreadedStandIn, user: Any
) -> None:
    before = await asyncio.to_thread(scrape, worker)
    cookie = await database_sync_to_async(login_cookie)(user)
    socket = await Socket.open(worker, cookie, MAX_MESSAGE_BYTES)
    await one_session(socket, upstream, worker)
    during = await asyncio.to_thread(scrape, worker)
    assert during[("screenshare_live_sessions", frozenset())] == 1
    await socket.stop()
    upstream.behaviour.refuse_connections = True  # the next session: refused with 1011
    await socket.send_json(type="start", mode="audio")
    refused = await socket.until(lambda m: m["type"] == "error")
    assert refused[-1]["code"] == "model_error"  # 1011 at setup: the service failed
    after = await asyncio.to_thread(scrape, worker)

    assert after[("screenshare_live_sessions", frozenset())] == 0
    assert moved(before, after, "screenshare_sessions_") == {
        ("screenshare_sessions_started_total",): 1,
        ("screenshare_sessions_ended_total", "client_stop"): 1,
        ("screenshare_sessions_ended_total", "upstream_unavailable"): 1,
    }
    assert moved(before, after, "screenshare_upstream_events_total") == {
        ("screenshare_upstream_events_total", "handover"): 1,
        ("screenshare_upstream_events_total", "refused"): 1,
    }
    assert moved(before, after, "screenshare_upstream_close_total") == {
        ("screenshare_upstream_close_total", "1011"): 1,  # the refusal; nothing else closed
    }
    assert moved(before, after, "screenshare_frames_total") == {
        ("screenshare_frames_total", "sent"): 2,
        ("screenshare_frames_total", "skipped"): 4,
    }
    assert moved(before, after, "screenshare_rate_limited_total") == {
        ("screenshare_rate_limited_total", "frame"): 4,
    }
    audio = moved(before, after, "screenshare_audio_seconds_total")
    assert audio[("screenshare_audio_seconds_total", "in")] == pytest.approx(1.0)
    assert audio[("screenshare_audio_seconds_total", "out")] == pytest.approx(
        socket.audio_bytes / 48000
    )
    tokens = moved(before, after, "screenshare_tokens_total")
    billed = billed_by_modality(upstream, [0, 1])
    assert tokens == {("screenshare_tokens_total", d, m): n for (d, m), n in billed.items()}
    stored = await database_sync_to_async(LiveSession.objects.get)(end_reason="client_stop")
    cost = moved(before, after, "screenshare_cost_usd_total")
    assert cost == {("screenshare_cost_usd_total",): pytest.approx(float(stored.cost_usd))}
    check_histograms(before, after)
    await socket.ws.close()


def check_histograms(before: Samples, after: Samples) -> None:
    """The relay timed each browser message it relayed; the recorder each write."""
    counts = moved(before, after, "screenshare_relay_latency_seconds_count")
    # Up: 2 frames, 10 audio chunks and 2 texts (a replay after the hand-over is not
    # timed again).
    assert counts[("screenshare_relay_latency_seconds_count", "up")] == 14
    assert counts[("screenshare_relay_latency_seconds_count", "down")] > 0
    sums = moved(before, after, "screenshare_relay_latency_seconds_sum")
    assert all(value > 0 for value in sums.values())
    writes = moved(before, after, "screenshare_transcript_write_seconds_count")
    assert writes[("screenshare_transcript_write_seconds_count",)] >= 2  # one a turn at least


def test_without_the_token_or_with_a_wrong_one_the_answer_is_401(worker: DaphneWorker) -> None:
    for authorization in (None, "Bearer wrong-token", TOKEN, f"Basic {TOKEN}", "Bearer "):
        status, body = fetch(worker, authorization)
        assert status == 401, authorization
        assert "screenshare_" not in body
    assert fetch(worker, f"Bearer {TOKEN}")[0] == 200


async def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One GET through an ASGI app; its status and body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_without_metrics_token_the_path_is_404_and_other_paths_go_on(settings: Any) -> None:
    passed: list[str] = []

    async def site(scope: Any, receive: Any, send: Any) -> None:
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = MetricsEndpoint(site)
    settings.METRICS_TOKEN = ""
    assert await asgi_get(app, "/metrics", [(b"authorization", b"Bearer anything")]) == (
        404, b"Not found.\n",
    )  # fmt: skip
    assert (await asgi_get(app, "/metrics/", []))[0] == 204  # only the exact path
    settings.METRICS_TOKEN = TOKEN
    status, body = await asgi_get(app, "/metrics", [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert status == 200
    assert b"# TYPE screenshare_sessions_started_total counter" in body
    assert passed == ["/metrics/"]


def test_with_metrics_off_nothing_is_counted() -> None:
    on = metrics.enabled()
    try:
        metrics.configure(enabled=False)
        before = metrics.SESSIONS_STARTED._value.get()
        metrics.session_live()
        metrics.RelayMetrics().relayed_up(0.001)
        assert metrics.SESSIONS_STARTED._value.get() == before
        metrics.configure(enabled=True)
        metrics.session_live()
        assert metrics.SESSIONS_STARTED._value.get() == before + 1
        metrics.LIVE_SESSIONS.dec()  # that session was never live
    finally:
        metrics.configure(enabled=on)
