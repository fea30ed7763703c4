"""Hostile server traffic: the shapes of real server messages, and ways to break them.

The builders make ``BidiGenerateContentServerMessage`` objects as the Live API sends them
(camelCase): model audio and text parts, transcriptions, turn ends, usage, tool calls and
their cancellation, goAway, session resumption handles, and kinds nobody knows yet. The
mutations break one: a key dropped, a value of the wrong JSON type at any path, a string
inflated to about a megabyte, base64 that is garbage or decodes to an odd number of bytes,
nesting deeper than a parser takes. :func:`send_hostile` puts the result on a live
connection: a dict as JSON, a str as a text frame exactly as given (so it may be no JSON).

Plain functions only: a fuzzer draws its choices and calls these; the stand-in never
depends on a test framework.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from standin.protocol import OUTPUT_MIME, Outgoing
from standin.server import StandIn

__all__ = [
    "BASE64_CORRUPTIONS",
    "MEGABYTE",
    "audio",
    "corrupt_base64",
    "deep_nesting",
    "drop_at",
    "flag",
    "function_call",
    "go_away",
    "inflate",
    "newest_open_connection",
    "paths",
    "pcm_audio",
    "resumption_update",
    "send_hostile",
    "set_at",
    "text_part",
    "tool_call",
    "tool_call_cancellation",
    "transcription",
    "turn_complete",
    "unknown_kind",
    "usage",
]

MEGABYTE = 2**20
PathKey = str | int
Path = tuple[PathKey, ...]
BASE64_CORRUPTIONS = ("odd_bytes", "bad_chars", "one_char_over", "url_safe", "not_text")


def audio(data: str, mime_type: str = OUTPUT_MIME) -> dict[str, Any]:
    """Model speech: one ``inlineData`` part whose ``data`` is the base64 text given."""
    part = {"inlineData": {"mimeType": mime_type, "data": data}}
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def pcm_audio(pcm: bytes, mime_type: str = OUTPUT_MIME) -> dict[str, Any]:
    """Model speech: ``pcm`` (PCM16LE 24 kHz) as the service encodes it."""
    return audio(base64.b64encode(pcm).decode("ascii"), mime_type)


def text_part(text: str, *, thought: bool | None = None) -> dict[str, Any]:
    """A model turn with one text part (a thought, with ``thought``)."""
    part: dict[str, Any] = {"text": text}
    if thought is not None:
        part["thought"] = thought
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def transcription(kind: str, text: str) -> dict[str, Any]:
    """``inputTranscription`` or ``outputTranscription``: one streamed fragment."""
    return {"serverContent": {kind: {"text": text}}}


def turn_complete(
    reason: str | None = None, status: str | None = None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A turnComplete, with ``turnCompleteReason``, ``interactionStatus`` and usage if given."""
    fields: dict[str, Any] = {"turnComplete": True}
    if reason is not None:
        fields["turnCompleteReason"] = reason
    if status is not None:
        fields["interactionStatus"] = status
    message: dict[str, Any] = {"serverContent": fields}
    if usage is not None:
        message["usageMetadata"] = usage
    return message


def flag(name: str) -> dict[str, Any]:
    """A serverContent with one flag set: ``interrupted``, ``generationComplete``..."""
    return {"serverContent": {name: True}}


def usage(
    counts: dict[str, Any], details: dict[str, Sequence[tuple[Any, Any]]] | None = None
) -> dict[str, Any]:
    """A usageMetadata message: ``counts`` (promptTokenCount...) and, per details key
    (promptTokensDetails...), (modality, tokenCount) pairs."""
    metadata: dict[str, Any] = dict(counts)
    for key, pairs in (details or {}).items():
        metadata[key] = [{"modality": modality, "tokenCount": count} for modality, count in pairs]
    return {"usageMetadata": metadata}


def function_call(name: Any, args: Any, call_id: Any = None) -> dict[str, Any]:
    """One entry of ``toolCall.functionCalls``; without ``call_id`` it has no ``id``."""
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id is not None:
        call["id"] = call_id
    return call


def tool_call(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A toolCall message."""
    return {"toolCall": {"functionCalls": list(calls)}}


def tool_call_cancellation(ids: Sequence[Any]) -> dict[str, Any]:
    """A toolCallCancellation message."""
    return {"toolCallCancellation": {"ids": list(ids)}}


def go_away(time_left: Any) -> dict[str, Any]:
    """A goAway message (``timeLeft`` a protobuf Duration such as ``"4.5s"``)."""
    return {"goAway": {"timeLeft": time_left}}


def resumption_update(handle: Any, resumable: Any = True) -> dict[str, Any]:
    """A sessionResumptionUpdate message."""
    return {"sessionResumptionUpdate": {"newHandle": handle, "resumable": resumable}}


def unknown_kind(kind: str, body: Any) -> dict[str, Any]:
    """A message of a kind the SDK does not know."""
    return {kind: body}


# Mutations.


def paths(value: Any) -> list[Path]:
    """Every path into ``value``'s objects and arrays, parents before children (not the root)."""
    found: list[Path] = []
    items: list[tuple[PathKey, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, child in items:
        found.append((key,))
        found.extend((key, *rest) for rest in paths(child))
    return found


def set_at(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with what is at ``path`` replaced by ``new``."""
    if not path:
        return new
    result = copy.deepcopy(value)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return result


def drop_at(value: Any, path: Path) -> Any:
    """A copy of ``value`` without what is at ``path`` (a key removed, an item deleted)."""
    if not path:
        return value
    result = copy.deepcopy(value)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return result


def inflate(text: str, size: int = MEGABYTE - 4096) -> str:
    """``text`` (or ``x``) repeated to ``size`` characters: a huge string."""
    seed = text or "x"
    return (seed * (size // len(seed) + 1))[:size]


def corrupt_base64(data: str, how: str) -> Any:
    """``data`` (base64 text) made wrong as ``how`` says (one of BASE64_CORRUPTIONS).

    ``odd_bytes`` is valid base64 of an odd number of bytes (not PCM16); ``bad_chars``
    holds characters outside both alphabets; ``one_char_over`` is a length no padding
    can fix; ``url_safe`` is the same bytes in the URL-safe alphabet (valid, and must
    stay so); ``not_text`` is a number where base64 text belongs.
    """
    raw = base64.b64decode(data + "=" * (-len(data) % 4)) if data else b""
    if how == "odd_bytes":
        odd = raw[: len(raw) - 1] if len(raw) % 2 == 0 else raw
        return base64.b64encode(odd or b"\x01").decode("ascii")
    if how == "bad_chars":
        return data[: len(data) // 2] + "!*%$" + data[len(data) // 2 :]
    if how == "one_char_over":
        stripped = data.rstrip("=")
        return stripped + "A" * ((1 - len(stripped)) % 4)
    if how == "url_safe":
        return base64.urlsafe_b64encode(raw).decode("ascii")
    if how == "not_text":
        return len(data)
    raise ValueError(f"Unknown base64 corruption {how!r}.")


def deep_nesting(depth: int, kind: str = "serverContent") -> str:
    """A text frame nesting arrays ``depth`` deep under ``kind`` (sent raw: no encoder
    would nest so deep)."""
    return '{"' + kind + '":' + "[" * depth + "]" * depth + "}"


# Sending.


def newest_open_connection(standin: StandIn) -> int | None:
    """The index of the newest connection whose setup completed and that is still open."""
    for record in reversed(standin.connections):
        if record.setup_complete_at is not None and not record.closed:
            return record.index
    return None


async def send_hostile(standin: StandIn, message: Outgoing, connection: int) -> bool:
    """Send one hostile message on connection ``connection`` (an index, not a position);
    False if that connection has closed meanwhile.

    A dict goes out as JSON (``NaN`` and huge numbers included), a str as a raw text frame.
    """
    position = next(
        (at for at, record in enumerate(standin.connections) if record.index == connection), None
    )
    if position is None or standin.connections[position].closed:
        return False
    try:
        if isinstance(message, str):
            await standin.push_raw(message, connection=position)
        else:
            await standin.push(message, connection=position)
    except (RuntimeError, ConnectionClosed):  # closed between the check and the send
        return False
    return True
