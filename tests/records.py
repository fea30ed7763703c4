"""Test helpers: media to send, and reading back what the stand-in sent and the site stored."""

import io
import math
import struct
from typing import Any

from channels.db import database_sync_to_async
from PIL import Image

from sessions_app.models import LiveSession, TranscriptEntry
from standin import StandIn
from standin.media import b64decode_any


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
