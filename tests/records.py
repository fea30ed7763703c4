"""Test helpers: media to send, reading back what the stand-in sent and the site stored,
and waiting (with a deadline) for what no event signals."""

import asyncio
import io
import math
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from channels.db import database_sync_to_async
from PIL import Image

from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.prices import TokenCounts, cost_usd, prices_for
from sessions_app.protocol import Kind
from standin import StandIn
from standin.media import b64decode_any

if TYPE_CHECKING:
    from tests.conftest import Browser

T = TypeVar("T")


def tone(freq: float, seconds: float, rate: int = 16000, amplitude: int = 12000) -> bytes:
    """PCM16LE mono sine."""
    n = int(rate * seconds)
    return struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A real JPEG of the given size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def chunks(pcm: bytes, size: int = 3200) -> list[bytes]:
    """``pcm`` in 100 ms pieces, as the page sends it."""
    return [pcm[start : start + size] for start in range(0, len(pcm), size)]


async def flood(browser: "Browser", kind: Kind, payload: bytes, interval: float) -> None:
    """Send ``payload`` every ``interval`` seconds until cancelled or closed."""
    while True:
        await browser.send_media(kind, payload)
        await asyncio.sleep(interval)  # pacing, not a wait: the flood's rate


def contents(standin: StandIn, connection: int = 0) -> list[dict[str, Any]]:
    """Every serverContent the stand-in sent on ``connection``, in order."""
    return [
        reply["serverContent"]
        for reply in standin.connections[connection].replies
        if "serverContent" in reply
    ]


def sent_texts(standin: StandIn, key: str, connection: int = 0) -> str:
    """What the stand-in streamed as serverContent.<key>.text, joined."""
    return "".join(
        content[key]["text"] for content in contents(standin, connection) if key in content
    )


def sent_audio(standin: StandIn, connection: int = 0) -> bytes:
    """The model audio the stand-in sent, joined."""
    return b"".join(
        b64decode_any(part["inlineData"]["data"])
        for content in contents(standin, connection)
        for part in content.get("modelTurn", {}).get("parts", [])
        if "inlineData" in part
    )


# The usage a LiveSession stores: its token counts (from usageMetadata's counts) and its
# tokens by modality (from usageMetadata's details).
USAGE_COUNTS = {
    "prompt_tokens": "promptTokenCount",
    "response_tokens": "responseTokenCount",
    "total_tokens": "totalTokenCount",
    "thoughts_tokens": "thoughtsTokenCount",
    "tool_use_prompt_tokens": "toolUsePromptTokenCount",
}
USAGE_DETAILS = {
    "prompt_tokens_by_modality": "promptTokensDetails",
    "response_tokens_by_modality": "responseTokensDetails",
    "tool_use_prompt_tokens_by_modality": "toolUsePromptTokensDetails",
}


def priced(session: LiveSession) -> Decimal:
    """The stored tokens of ``session`` times the price table's rates for its model."""
    prices = prices_for(session.model)
    assert prices is not None, f"no price for {session.model}"
    return cost_usd(prices, TokenCounts.of(session))


def sent_token_counts(standin: StandIn, *connections: int) -> dict[str, int]:
    """The stand-in's usageMetadata counts on ``connections`` (default: 0), added up."""
    totals = dict.fromkeys(USAGE_COUNTS, 0)
    for index in connections or (0,):
        for reply in standin.connections[index].replies:
            for name, key in USAGE_COUNTS.items():
                totals[name] += reply.get("usageMetadata", {}).get(key, 0)
    return totals


def sent_usage(standin: StandIn, *connections: int) -> dict[str, Any]:
    """What the stand-in's usageMetadata messages on ``connections`` (default: 0) add up
    to: the token counts and, per modality, the details."""
    by_modality = {name: Counter[str]() for name in USAGE_DETAILS}
    for index in connections or (0,):
        for reply in standin.connections[index].replies:
            for name, key in USAGE_DETAILS.items():
                for detail in reply.get("usageMetadata", {}).get(key, []):
                    by_modality[name][detail["modality"]] += detail["tokenCount"]
    return {
        **sent_token_counts(standin, *connections),
        **{name: dict(counts) for name, counts in by_modality.items()},
    }


def final_turn_completes(standin: StandIn, connection: int = 0) -> list[dict[str, Any]]:
    """The turnComplete contents that end a turn (not those saying more output follows)."""
    return [
        content
        for content in contents(standin, connection)
        if content.get("turnComplete") and content.get("interactionStatus") != "IN_PROGRESS"
    ]


def client_messages(standin: StandIn, kind: str, connection: int = 0) -> list[dict[str, Any]]:
    """The bodies of the client messages of one kind (``realtimeInput``, ``clientContent``...)."""
    return [
        message[kind] for message in standin.connections[connection].messages if kind in message
    ]


@database_sync_to_async
def stored(session_id: str) -> tuple[LiveSession, list[tuple[int, str, str, str]]]:
    """The session row and its transcript as (sequence, role, source, text)."""
    session = LiveSession.objects.get(pk=session_id)
    lines = list(
        TranscriptEntry.objects.filter(session=session)
        .order_by("sequence")
        .values_list("sequence", "role", "source", "text")
    )
    return session, lines


async def stored_unnumbered(session_id: str) -> tuple[LiveSession, list[tuple[str, str, str]]]:
    """The session row and its transcript as (role, source, text), without the sequence."""
    session, lines = await stored(session_id)
    return session, [line[1:] for line in lines]


async def stored_sessions(user: Any) -> list[tuple[LiveSession, list[tuple[str, str, str]]]]:
    """The user's sessions, oldest first, each with its lines as (role, source, text)."""
    ids = await database_sync_to_async(
        lambda: list(
            LiveSession.objects.filter(user=user)
            .order_by("started_at")
            .values_list("pk", flat=True)
        )
    )()
    return [await stored_unnumbered(str(pk)) for pk in ids]


def stored_lines_and_notes(
    session: LiveSession,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A session's lines (sequence, role, source, text, time) and notes (title, body, time)."""
    lines = list(
        session.entries.order_by("sequence").values_list(
            "sequence", "role", "source", "text", "created_at"
        )
    )
    notes = list(session.notes.order_by("created_at").values_list("title", "body", "created_at"))
    return lines, notes


def last_handle(standin: StandIn, connection: int) -> str:
    """The newest resumption handle a connection sent."""
    handles = [
        reply["sessionResumptionUpdate"]["newHandle"]
        for reply in standin.connections[connection].replies
        if "sessionResumptionUpdate" in reply
    ]
    return handles[-1]


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str | None = None,
) -> T:
    """Re-run the async ``check()`` until it returns something truthy; return that.

    For conditions nothing signals, such as a row written in the background. Fails with
    an AssertionError naming the condition and its last value after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() >= deadline:
            name = what or getattr(check, "__qualname__", repr(check))
            raise AssertionError(f"not true within {timeout} s: {name} (last: {value!r})")
        await asyncio.sleep(interval)  # the deadline-bound poll this helper is for


async def ended_session(session_id: str, timeout: float = 10.0) -> LiveSession:
    """The session once it is no longer active (a disconnect ends it in the background)."""
    get = database_sync_to_async(LiveSession.objects.get)

    async def no_longer_active() -> LiveSession | None:
        session = await get(pk=session_id)
        return None if session.status == LiveSession.Status.ACTIVE else session

    return await eventually(no_longer_active, timeout, interval=0.05)


async def live_after_one_turn(browser: Any, standin: StandIn, text: str) -> dict[str, Any]:
    """Connect ``browser``, start a session, have one typed turn answered, and wait for the
    handle sent with that turn's end (``standin-0-1``); return the ``live`` status."""
    await browser.connect()
    live: dict[str, Any] = await browser.start()
    await browser.send(type="text", text=text)
    await browser.expect("turn_complete", turn=1)
    await standin.wait_for(lambda: last_handle(standin, 0) == "standin-0-1")
    return live


def realtime_fields(standin: Any, connection: int = 0) -> list[str]:
    """The realtimeInput fields the stand-in received on ``connection``, in order."""
    return [key for body in client_messages(standin, "realtimeInput", connection) for key in body]


def first_answer(standin: Any, connection: int = 0) -> int:
    """How many client messages had arrived when the first reply of a model turn went out."""
    record = standin.connections[connection]
    for reply, mark in zip(record.replies, record.reply_marks, strict=True):
        content = reply.get("serverContent") or {}
        if "modelTurn" in content or "outputTranscription" in content:
            return int(mark)
    raise AssertionError(f"no model turn was sent: {record.summary()}")


def position(standin: Any, field: str, connection: int = 0) -> int:
    """Where the first realtimeInput carrying ``field`` is among all client messages."""
    for index, message in enumerate(standin.connections[connection].messages):
        if field in message.get("realtimeInput", {}):
            return index
    raise AssertionError(f"no realtimeInput {field} on connection {connection}")
