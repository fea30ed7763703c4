"""Wire-level pieces the stand-in's modules share: close codes and reasons, errors, helpers.

The reasons are the texts today's Gemini Live service closes with (see
``/work/shared/design/GEMINI_LIVE.md``); a close reason is cut to the 123 bytes a
WebSocket close frame holds, as the service's own are.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from standin import media

NORMAL_CLOSURE = 1000
INVALID_ARGUMENT = 1007
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code

INVALID_HANDLE_REASON = "Invalid session resumption handle."
NOT_RESUMABLE_REASON = "Session resumption handle is not resumable."
EXPIRED_HANDLE_REASON = "Session resumption handle has expired."
STILL_ACTIVE_REASON = "The session is still active on another connection."
DEADLINE_REASON = "Deadline expired before operation could complete."
NO_VOICES_REASON = "Cannot extract voices from a non-audio request."
UNAVAILABLE_REASON = "Service unavailable."
GO_AWAY_CLOSE_REASON = "Connection lifetime reached."
INTERNAL_ERROR_REASON = "Stand-in internal error."

OUTPUT_RATE = 24000
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")

# A server message: a JSON object, or (a scripted fault) a text frame sent exactly as is.
Outgoing = dict[str, Any] | str


class Refusal(Exception):
    """Why the connection is closed with ``code`` (and the message as reason)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class InvalidInput(Refusal):
    """A client message the real service would reject (closes with 1007)."""

    def __init__(self, reason: str) -> None:
        super().__init__(INVALID_ARGUMENT, reason)


def not_found_reason(model_id: str, version: str) -> str:
    """The 1008 reason for a retired or unknown model id."""
    return (
        f"models/{model_id} is not found for API version {version},"
        " or is not supported for bidiGenerateContent."
    )


def cut_reason(reason: str) -> str:
    """``reason`` cut to what a close frame holds, at a character boundary."""
    return reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def duration_json(seconds: float) -> str:
    """``seconds`` as protobuf Duration JSON, with 0, 3, 6 or 9 decimals: ``"1.500s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"Not a valid time left: {seconds!r}")
    nanos = round(seconds * 1e9)
    whole, fraction = divmod(nanos, 10**9)
    digits = f"{fraction:09d}"
    while digits.endswith("000"):
        digits = digits[:-3]
    return f"{whole}.{digits}s" if digits else f"{whole}s"


def now() -> float:
    """The running loop's clock, which every recorded time uses."""
    return asyncio.get_running_loop().time()


def content(**fields: Any) -> dict[str, Any]:
    """A serverContent message."""
    return {"serverContent": fields}


def words(text: str) -> list[str]:
    """``text`` cut before each word, whitespace kept with the word before it."""
    return _WORD_BOUNDARY.split(text)


def fragments(text: str, parts: int) -> list[str]:
    """``text`` cut at word boundaries into at most ``parts`` pieces that join back to it."""
    if not text:
        return []
    pieces = words(text)
    count = max(1, min(parts, len(pieces)))
    return [
        "".join(pieces[len(pieces) * k // count : len(pieces) * (k + 1) // count])
        for k in range(count)
    ]


def as_list(value: Any, where: str) -> list[Any]:
    """``value`` if it is a JSON array, else an InvalidInput error."""
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list.")
    return value


def as_object(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object (None: an empty one), else an InvalidInput error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object.")
    return value


def blob(value: Any, where: str) -> tuple[str, bytes]:
    """(mimeType, decoded data) of a Blob; either base64 alphabet is accepted."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise InvalidInput(f"{where} must be a Blob with base64 data.")
    try:
        data = media.b64decode_any(value["data"])
    except ValueError as exc:
        raise InvalidInput(f"{where} data is not valid base64.") from exc
    return str(value.get("mimeType") or ""), data
