"""The browser <-> server WebSocket protocol: every message is parsed and encoded here.

Binary frames carry media: one kind byte, then the payload (no base64). Text frames carry
JSON objects with a ``type`` field. docs/protocol.md is the reference for browser authors.
"""

import json
import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

JSON_SEPARATORS = (",", ":")


class Kind(IntEnum):
    """The first byte of a binary frame."""

    AUDIO = 0x01  # browser->server: PCM16LE mono 16 kHz; server->browser: PCM16LE mono 24 kHz
    JPEG = 0x02
    PNG = 0x03


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    UNAUTHENTICATED = 4401
    UPSTREAM_FAILED = 4502


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` message."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    TOO_LARGE = "too_large"
    EMPTY_FRAME = "empty_frame"
    UNKNOWN_KIND = "unknown_kind"
    BAD_IMAGE = "bad_image"
    BAD_AUDIO = "bad_audio"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    TOO_MANY_SESSIONS = "too_many_sessions"
    SERVER_BUSY = "server_busy"


class ProtocolError(Exception):
    """A client message that cannot be accepted; becomes one ``error`` reply."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


MODES = {"audio": "AUDIO", "text": "TEXT"}

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """What the server accepts from a browser."""

    max_message_bytes: int
    max_text_chars: int
    voices: tuple[str, ...]
    default_voice: str


@dataclass(frozen=True)
class Start:
    """Open a live session with the chosen response modality and voice."""

    modality: str
    voice: str


@dataclass(frozen=True)
class TypedText:
    """A message the user typed."""

    text: str


@dataclass(frozen=True)
class Stop:
    """End the live session; the socket stays open for another start."""


@dataclass(frozen=True)
class AudioChunk:
    """Microphone audio, PCM16LE mono 16 kHz."""

    pcm: bytes = field(repr=False)

    @property
    def seconds(self) -> float:
        """Duration of the chunk."""
        return len(self.pcm) / 32000


@dataclass(frozen=True)
class Frame:
    """One still of the shared screen."""

    data: bytes = field(repr=False)
    mime_type: str


ClientMessage = Start | TypedText | Stop | AudioChunk | Frame


def parse_binary(raw: bytes, limits: Limits) -> AudioChunk | Frame:
    """Parse a binary frame: one kind byte, then the payload."""
    if len(raw) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"Binary message of {len(raw)} bytes exceeds the limit of "
            f"{limits.max_message_bytes} bytes.",
        )
    if len(raw) < 2:
        raise ProtocolError(ErrorCode.EMPTY_FRAME, "Binary message has no payload.")
    kind, payload = raw[0], bytes(raw[1:])
    if kind == Kind.AUDIO:
        if len(payload) % 2:
            raise ProtocolError(
                ErrorCode.BAD_AUDIO, "Audio payload must be 16-bit PCM (an even number of bytes)."
            )
        return AudioChunk(pcm=payload)
    if kind == Kind.JPEG:
        if not payload.startswith(JPEG_MAGIC):
            raise ProtocolError(ErrorCode.BAD_IMAGE, "Frame tagged JPEG is not a JPEG image.")
        return Frame(data=payload, mime_type="image/jpeg")
    if kind == Kind.PNG:
        if not payload.startswith(PNG_MAGIC):
            raise ProtocolError(ErrorCode.BAD_IMAGE, "Frame tagged PNG is not a PNG image.")
        return Frame(data=payload, mime_type="image/png")
    raise ProtocolError(ErrorCode.UNKNOWN_KIND, f"Unknown binary kind 0x{kind:02x}.")


def parse_text(raw: str, limits: Limits) -> Start | TypedText | Stop:
    """Parse a JSON text frame into a control message."""
    if len(raw) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"Text message of {len(raw)} characters exceeds the limit of "
            f"{limits.max_message_bytes}.",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, "Text message is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "Text message must be a JSON object.")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, 'Text message needs a string "type" field.')
    parser = _TEXT_PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {kind[:40]!r}.")
    return parser(data, limits)


def _parse_start(data: dict[str, Any], limits: Limits) -> Start:
    """``{"type": "start", "mode": "audio"|"text", "voice": "Puck"}``."""
    mode = data.get("mode", "audio")
    if mode not in MODES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "mode" must be "audio" or "text".')
    voice = data.get("voice", limits.default_voice)
    if voice not in limits.voices:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Field "voice" must be one of: {", ".join(limits.voices)}.'
        )
    return Start(modality=MODES[mode], voice=voice)


def _parse_text_message(data: dict[str, Any], limits: Limits) -> TypedText:
    """``{"type": "text", "text": "..."}``."""
    text = data.get("text")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "text" must be a string.')
    text = text.strip()
    if not text:
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "text" is empty.')
    if len(text) > limits.max_text_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"Text is longer than {limits.max_text_chars} characters."
        )
    if _CONTROL_CHARS.search(text):
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "text" contains control characters.')
    return TypedText(text=text)


def _parse_stop(data: dict[str, Any], limits: Limits) -> Stop:
    """``{"type": "stop"}``."""
    return Stop()


_TEXT_PARSERS = {"start": _parse_start, "text": _parse_text_message, "stop": _parse_stop}


def encode(type_: str, **fields: Any) -> str:
    """Encode one server->browser control message as compact JSON."""
    return json.dumps({"type": type_, **fields}, separators=JSON_SEPARATORS)


def encode_error(code: ErrorCode, message: str) -> str:
    """Encode an ``error`` message."""
    return encode("error", code=str(code), message=message)


def encode_audio(pcm: bytes) -> bytes:
    """Encode model audio (PCM16LE mono 24 kHz) as a binary frame."""
    return bytes((Kind.AUDIO,)) + pcm
