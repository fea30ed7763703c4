"""Prometheus metrics of one worker process, served at ``/metrics`` (assistant_site.metrics).

Each Daphne worker counts its own sessions; Prometheus scrapes every worker and adds them
up. Nothing is counted while ``METRICS_TOKEN`` is unset (nobody could read it): every
function here then returns at once, so the media path pays one flag test.

The names, kinds and labels are the operators' contract (deploy/grafana-dashboard.json
and docs read them); tests/integration/test_metrics.py holds them.
"""

import time
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# No "_created" series: nothing here reads them, and they double what Prometheus stores.
disable_created_metrics()

# The registry of this process's metrics (only these: no per-process defaults, so that a
# worker's page is what the dashboard reads).
REGISTRY = CollectorRegistry(auto_describe=True)

# Relay latency buckets, in seconds: sub-millisecond to a few seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Upstream event kinds and token directions: fixed sets, so labels never grow unbounded.
UPSTREAM_KINDS = ("handover", "reconnect", "reseed", "refused", "unknown_message")
RESUMED_KINDS = {"handover": "handover", "reconnect": "reconnect", "fresh": "reseed"}
CLOSE_CODES_KEPT = 64  # distinct close codes counted apart; the rest as "other"

LIVE_SESSIONS = Gauge(
    "screenshare_live_sessions", "Live sessions this worker holds.", registry=REGISTRY
)
SESSIONS_STARTED = Counter(
    "screenshare_sessions_started", "Sessions that went live.", registry=REGISTRY
)
SESSIONS_ENDED = Counter(
    "screenshare_sessions_ended",
    "Sessions that ended, by end reason (refused and failed starts included).",
    ["reason"],
    registry=REGISTRY,
)
UPSTREAM_EVENTS = Counter(
    "screenshare_upstream_events",
    "Model connection events: handover, reconnect, reseed, refused, unknown_message.",
    ["kind"],
    registry=REGISTRY,
)
UPSTREAM_CLOSE = Counter(
    "screenshare_upstream_close",
    "Model connections the service closed or refused, by WebSocket close code.",
    ["code"],
    registry=REGISTRY,
)
RELAY_LATENCY = Histogram(
    "screenshare_relay_latency_seconds",
    "Time a message spends in the relay, from arrival to sent on (up: browser to model).",
    ["direction"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
FRAMES = Counter(
    "screenshare_frames",
    "Screen frames from browsers: sent to the model, or skipped (rate-limited, no session).",
    ["outcome"],
    registry=REGISTRY,
)
AUDIO_SECONDS = Counter(
    "screenshare_audio_seconds",
    "Seconds of audio relayed: in (microphone) and out (model speech).",
    ["direction"],
    registry=REGISTRY,
)
TOKENS = Counter(
    "screenshare_tokens",
    "Tokens the model service billed: in (prompt, tool use) and out (response, thinking).",
    ["direction", "modality"],
    registry=REGISTRY,
)
COST = Counter(
    "screenshare_cost_usd",
    "Estimated cost of the tokens billed, in USD, at the price table (GEMINI_PRICES).",
    registry=REGISTRY,
)
TRANSCRIPT_WRITE = Histogram(
    "screenshare_transcript_write_seconds",
    "Time one write of transcript lines and totals takes (failed ones included).",
    buckets=WRITE_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "screenshare_rate_limited",
    "Browser messages dropped by the rate limits, by kind (audio, frame, text, other).",
    ["kind"],
    registry=REGISTRY,
)

# Children bound once: the hot path does no label lookup.
_UP = RELAY_LATENCY.labels(direction="up")
_DOWN = RELAY_LATENCY.labels(direction="down")
_FRAMES_SENT = FRAMES.labels(outcome="sent")
_FRAMES_SKIPPED = FRAMES.labels(outcome="skipped")
_AUDIO_IN = AUDIO_SECONDS.labels(direction="in")
_AUDIO_OUT = AUDIO_SECONDS.labels(direction="out")

_state = {"on": False}


def configure(*, enabled: bool) -> None:
    """Count from now on, or not (the app calls this once, from METRICS_TOKEN)."""
    _state["on"] = enabled


def enabled() -> bool:
    """Whether this process counts."""
    return _state["on"]


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)


def session_live() -> None:
    """A session went live on this worker."""
    if _state["on"]:
        SESSIONS_STARTED.inc()
        LIVE_SESSIONS.inc()


def session_ended(reason: str, *, was_live: bool) -> None:
    """A session ended (``was_live``: it had gone live on this worker)."""
    if _state["on"]:
        SESSIONS_ENDED.labels(reason=reason).inc()
        if was_live:
            LIVE_SESSIONS.dec()


def upstream_event(kind: str) -> None:
    """One of UPSTREAM_KINDS happened to a model connection."""
    if _state["on"]:
        UPSTREAM_EVENTS.labels(kind=kind).inc()


def resumed(how: str) -> None:
    """The relay went on over a new connection (events.Resumed.how)."""
    upstream_event(RESUMED_KINDS.get(how, how))


def upstream_closed(code: int | None) -> None:
    """The service closed or refused a model connection with ``code``."""
    if not _state["on"]:
        return
    label = "none" if code is None else str(code)
    if label not in _close_labels:
        label = label if len(_close_labels) < CLOSE_CODES_KEPT else "other"
        _close_labels.add(label)
    UPSTREAM_CLOSE.labels(code=label).inc()


_close_labels: set[str] = set()


def frame(*, sent: bool) -> None:
    """A browser's frame was sent to the model, or skipped."""
    if _state["on"]:
        (_FRAMES_SENT if sent else _FRAMES_SKIPPED).inc()


def audio(seconds: float, *, direction: str) -> None:
    """Seconds of audio relayed ``in`` (microphone) or ``out`` (model speech)."""
    if _state["on"]:
        (_AUDIO_IN if direction == "in" else _AUDIO_OUT).inc(seconds)


def tokens(direction: str, by_modality: Mapping[str, int], total: int) -> None:
    """Tokens billed in one usage report, by modality (the unitemised rest as OTHER)."""
    if not _state["on"]:
        return
    for modality, count in by_modality.items():
        if count > 0:
            TOKENS.labels(direction=direction, modality=modality).inc(count)
    rest = total - sum(by_modality.values())
    if rest > 0:
        TOKENS.labels(direction=direction, modality="OTHER").inc(rest)


def cost(usd: float) -> None:
    """The estimated cost of the tokens billed grew by ``usd``."""
    if _state["on"] and usd > 0:
        COST.inc(usd)


def transcript_write(started: float) -> None:
    """A transcript write that began at ``started`` (time.perf_counter()) is over."""
    if _state["on"]:
        TRANSCRIPT_WRITE.observe(time.perf_counter() - started)


def rate_limited(kind: str) -> None:
    """A browser message of ``kind`` was dropped by the rate limits (a frame: skipped)."""
    if _state["on"]:
        RATE_LIMITED.labels(kind=kind).inc()
        if kind == "frame":
            _FRAMES_SKIPPED.inc()


class RelayMetrics:
    """The relay's observer (live.observe.RelayObserver): latency, refusals, closes."""

    def relayed_up(self, seconds: float) -> None:
        """A browser message reached the model."""
        if _state["on"]:
            _UP.observe(seconds)

    def relayed_down(self, seconds: float) -> None:
        """A model message was handed to the browser."""
        if _state["on"]:
            _DOWN.observe(seconds)

    def refused(self, code: int | None) -> None:
        """The service refused a connection."""
        upstream_event("refused")
        upstream_closed(code)

    def unknown_message(self) -> None:
        """A model message the SDK could not read was skipped."""
        upstream_event("unknown_message")

    def closed(self, code: int | None) -> None:
        """The service closed a connection."""
        upstream_closed(code)
