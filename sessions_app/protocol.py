"""The browser <-> server WebSocket protocol: every message is parsed and encoded here.

Binary frames carry media: one kind byte, then the payload (no base64). Text frames carry
JSON objects with a ``type`` field. docs/protocol.md is the reference for browser authors.
This module parses what the browser sends; :mod:`sessions_app.outbound` types and encodes
what the server sends.

Validation is strict and total: a message of the wrong size, kind, encoding or shape, with
a field of the wrong type, a value outside its allow-list or a field nobody defined, gets
a :class:`ProtocolError` with a specific :class:`ErrorCode`; the parsers never raise
anything else, whatever the bytes.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from django.utils.translation import gettext

JSON_SEPARATORS = (",", ":")


class Kind(IntEnum):
    """The first byte of a binary frame."""

    AUDIO = 0x01  # browser->server: PCM16LE mono 16 kHz; server->browser: PCM16LE mono 24 kHz
    JPEG = 0x02
    PNG = 0x03


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    INTERNAL_ERROR = 1011
    PROTOCOL_ERROR = 4400
    UNAUTHENTICATED = 4401
    UPSTREAM_FAILED = 4502
    STORAGE_UNAVAILABLE = 4503
    RATE_LIMITED = 4429


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
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_REFUSED = "model_refused"
    MODEL_ERROR = "model_error"
    INTERNAL_ERROR = "internal_error"
    TOO_MANY_SESSIONS = "too_many_sessions"
    SERVER_BUSY = "server_busy"
    RATE_LIMITED = "rate_limited"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    WRONG_MIC_MODE = "wrong_mic_mode"
    BUDGET_WARNING = "budget_warning"
    BUDGET_EXHAUSTED = "budget_exhausted"


# Codes of a message that cannot be read at all: a browser speaking this protocol never
# sends one, and a connection that keeps sending them is closed (docs/protocol.md).
MALFORMED_CODES = frozenset(
    {
        ErrorCode.BAD_JSON,
        ErrorCode.BAD_MESSAGE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.INVALID_FIELD,
        ErrorCode.EMPTY_FRAME,
        ErrorCode.UNKNOWN_KIND,
        ErrorCode.BAD_IMAGE,
        ErrorCode.BAD_AUDIO,
    }
)
# Codes the parsers give: refused before the session state is looked at.
PARSE_CODES = MALFORMED_CODES | {ErrorCode.TOO_LARGE}


class ClientError(Exception):
    """What the browser is told as one ``error`` reply, and what follows it.

    ``end_reason`` ends the live session for that reason (its close code follows from
    it); ``close_code`` closes the socket when there is no session to end.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        end_reason: str | None = None,
        close_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.end_reason = end_reason
        self.close_code = close_code
        self.details = details or {}


class ProtocolError(ClientError):
    """A client message that cannot be accepted; the socket and the session go on."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)


MODES = {"audio": "AUDIO", "text": "TEXT"}

JPEG_MAGIC = b"\xff\xd8\xff"  # SOI, then the first segment's marker
JPEG_EOI = b"\xff\xd9"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IHDR = b"\x00\x00\x00\x0dIHDR"  # the first chunk: 13 bytes of IHDR
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk, always these 12 bytes
JPEG_MIN_BYTES = len(JPEG_MAGIC) + 1 + len(JPEG_EOI)
PNG_MIN_BYTES = len(PNG_MAGIC) + 25 + len(PNG_IEND)

# A valid message is one flat object; a few nested arrays or objects still get a precise
# error about the field that holds them, more are refused before the JSON is parsed.
MAX_JSON_CONTAINERS = 16

# The fields each message type may carry; any other field is refused.
FIELDS: dict[str, frozenset[str]] = {
    "start": frozenset({"type", "mode", "voice", "push_to_talk", "language"}),
    "text": frozenset({"type", "text"}),
    "stop": frozenset({"type"}),
    "audio_end": frozenset({"type"}),
    "ack": frozenset({"type", "audio"}),
    "activity_start": frozenset({"type"}),
    "activity_end": frozenset({"type"}),
}

# C0 and C1 control characters and DEL, except tab and newline (allowed in typed text).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# A JSON string literal, or an unterminated one up to the end: it matches at every quote,
# so a scan is linear however the quotes and backslashes are arranged.
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class Limits:
    """What the server accepts from a browser."""

    max_message_bytes: int
    max_text_chars: int
    voices: tuple[str, ...]
    default_voice: str
    languages: tuple[str, ...] = ()  # speech languages (GEMINI_SPEECH_LANGUAGES)
    default_language: str = ""  # used when a start names none; empty: the model's choice


@dataclass(frozen=True)
class Start:
    """Open a live session with the chosen response modality and voice."""

    modality: str
    voice: str
    push_to_talk: bool = False  # the user holds a button to talk: no automatic detection
    language: str = ""  # the speech language (a Live API code); empty: the model's choice


@dataclass(frozen=True)
class TypedText:
    """A message the user typed."""

    text: str


@dataclass(frozen=True)
class Stop:
    """End the live session; the socket stays open for another start."""


@dataclass(frozen=True)
class AudioEnd:
    """The microphone stopped (muted, or a second of silence): the model may answer now."""


@dataclass(frozen=True)
class ActivityStart:
    """Push-to-talk: the user pressed the talk button; what follows is their turn."""


@dataclass(frozen=True)
class ActivityEnd:
    """Push-to-talk: the user let go of the talk button; the model may answer now."""


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


@dataclass(frozen=True)
class Ack:
    """The model audio frames the browser received since the session's ``connecting``."""

    audio: int


ControlMessage = Start | TypedText | Stop | AudioEnd | Ack | ActivityStart | ActivityEnd
ClientMessage = ControlMessage | AudioChunk | Frame

# An ack's count: a non-negative integer, short enough to be converted at no cost.
_ACK_COUNT = re.compile(r"0|[1-9][0-9]{0,14}")


@dataclass(frozen=True)
class JsonNumber:
    """A JSON number, kept as its literal: no field takes a number, and none is converted.

    Converting would cost time (a 700,000-digit integer) or fail (Python's limit on
    integer digits); a field holding a number is refused like any other wrong type.
    """

    literal: str


def parse_binary(raw: bytes, limits: Limits) -> AudioChunk | Frame:
    """Parse a binary frame: one kind byte, then the payload.

    Returns a message or raises :class:`ProtocolError`; never anything else.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "A binary message must be bytes.")
    data = bytes(raw)
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"Binary message of {len(data)} bytes exceeds the limit of "
            f"{limits.max_message_bytes} bytes.",
        )
    if not data:
        raise ProtocolError(ErrorCode.EMPTY_FRAME, "Binary message is empty.")
    kind, payload = data[0], data[1:]
    if kind not in _BINARY_PARSERS:
        raise ProtocolError(ErrorCode.UNKNOWN_KIND, f"Unknown binary kind 0x{kind:02x}.")
    if not payload:
        raise ProtocolError(ErrorCode.EMPTY_FRAME, "Binary message has no payload.")
    return _BINARY_PARSERS[kind](payload)


def _parse_audio(payload: bytes) -> AudioChunk:
    """Microphone audio: 16-bit samples, so an even number of bytes."""
    if len(payload) % 2:
        raise ProtocolError(
            ErrorCode.BAD_AUDIO, "Audio payload must be 16-bit PCM (an even number of bytes)."
        )
    return AudioChunk(pcm=payload)


def _parse_jpeg(payload: bytes) -> Frame:
    """A JPEG: SOI and a segment marker first, the EOI marker last (as canvas.toBlob makes)."""
    if not (
        len(payload) >= JPEG_MIN_BYTES
        and payload.startswith(JPEG_MAGIC)
        and 0xC0 <= payload[3] <= 0xFE
        and not 0xD0 <= payload[3] <= 0xD9  # RSTn, SOI and EOI cannot come first
    ):
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"Frame tagged JPEG is {_sniff(payload)}.")
    if not payload.endswith(JPEG_EOI):
        raise ProtocolError(
            ErrorCode.BAD_IMAGE, "Frame tagged JPEG is truncated: it does not end with FF D9."
        )
    return Frame(data=payload, mime_type="image/jpeg")


def _parse_png(payload: bytes) -> Frame:
    """A PNG: the signature and the IHDR chunk first, the IEND chunk last."""
    if not payload.startswith(PNG_MAGIC + PNG_IHDR):
        raise ProtocolError(ErrorCode.BAD_IMAGE, f"Frame tagged PNG is {_sniff(payload)}.")
    if len(payload) < PNG_MIN_BYTES or not payload.endswith(PNG_IEND):
        raise ProtocolError(
            ErrorCode.BAD_IMAGE, "Frame tagged PNG is truncated: it does not end with IEND."
        )
    return Frame(data=payload, mime_type="image/png")


def _sniff(payload: bytes) -> str:
    """What a mislabelled image payload looks like, for the error message."""
    if payload.startswith(PNG_MAGIC):
        return "a PNG image (use kind 0x03)"
    if payload.startswith(JPEG_MAGIC):
        return "not a well-formed JPEG image"
    if payload.startswith(b"\xff\xd8"):
        return "a JPEG image (use kind 0x02)"
    return "not an image of that type"


_BINARY_PARSERS: dict[int, Callable[[bytes], AudioChunk | Frame]] = {
    Kind.AUDIO: _parse_audio,
    Kind.JPEG: _parse_jpeg,
    Kind.PNG: _parse_png,
}


def parse_text(raw: str, limits: Limits) -> ControlMessage:
    """Parse a JSON text frame into a control message.

    Returns a message or raises :class:`ProtocolError`; never anything else.
    """
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_JSON, "Text message is not valid UTF-8.") from exc
    if not isinstance(raw, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "A text message must be a string.")
    size = len(raw)
    if size > limits.max_message_bytes // 4:  # else it cannot be over in UTF-8 either
        size = len(raw.encode("utf-8", "surrogatepass"))
    if size > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"Text message of {size} bytes exceeds the limit of {limits.max_message_bytes}.",
        )
    data = _load_json(raw)
    if not isinstance(data, dict):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"Text message must be a JSON object, not {_describe(data)}."
        )
    if "type" not in data:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, 'Text message has no "type" field.')
    kind = data["type"]
    if not isinstance(kind, str):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f'Field "type" must be a string, not {_describe(kind)}.'
        )
    if kind not in FIELDS:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {_show(kind)}.")
    unknown = [name for name in data if name not in FIELDS[kind]]
    if unknown:
        names = ", ".join(_show(name) for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        plural = "s" if len(unknown) > 1 else ""
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Unknown field{plural} {names}{more} in a "{kind}" message.'
        )
    return _TEXT_PARSERS[kind](data, limits)


def _load_json(raw: str) -> Any:
    """Decode JSON strictly: no NaN or Infinity, no repeated keys, numbers left unconverted."""
    if _container_count(raw) > MAX_JSON_CONTAINERS:
        raise ProtocolError(
            ErrorCode.BAD_JSON,
            f"Text message holds more than {MAX_JSON_CONTAINERS} JSON arrays or objects.",
        )
    try:
        return json.loads(
            raw,
            object_pairs_hook=_unique_keys,
            parse_int=JsonNumber,
            parse_float=JsonNumber,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, "Text message is not valid JSON.") from exc


def _container_count(raw: str) -> int:
    """How many ``[`` and ``{`` the JSON text holds outside its strings (an upper bound)."""
    count = raw.count("[") + raw.count("{")
    if count <= MAX_JSON_CONTAINERS:
        return count  # the usual case: no need to look for strings
    outside = _JSON_STRING.sub("", raw)
    return outside.count("[") + outside.count("{")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict; a key given twice is refused (JSON.parse would keep the last)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"Field {_show(key)} appears more than once."
            )
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _string_field(data: dict[str, Any], name: str, default: str | None = None) -> str:
    """A field that must hold a string: present (unless it has a default) and valid Unicode."""
    if name not in data:
        if default is None:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f'Field "{name}" is missing.')
        return default
    value = data[name]
    if not isinstance(value, str):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Field "{name}" must be a string, not {_describe(value)}.'
        )
    if _SURROGATES.search(value):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Field "{name}" is not valid Unicode (a lone surrogate).'
        )
    return value


def _parse_start(data: dict[str, Any], limits: Limits) -> Start:
    """``{"type": "start", "mode": "audio"|"text", "voice": "Puck"}``; both fields optional."""
    mode = _string_field(data, "mode", "audio")
    if mode not in MODES:
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "mode" must be "audio" or "text".')
    voice = _string_field(data, "voice", limits.default_voice)
    if voice not in limits.voices:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Field "voice" must be one of: {", ".join(limits.voices)}.'
        )
    push_to_talk = data.get("push_to_talk", False)
    if not isinstance(push_to_talk, bool):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f'Field "push_to_talk" must be true or false, not {_describe(push_to_talk)}.',
        )
    language = _speech_language(data, limits)
    return Start(modality=MODES[mode], voice=voice, push_to_talk=push_to_talk, language=language)


def _speech_language(data: dict[str, Any], limits: Limits) -> str:
    """A start's ``language``: one of the offered speech languages, else the default."""
    language = _string_field(data, "language", limits.default_language)
    if language != limits.default_language and language not in limits.languages:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            gettext('Field "language" must be one of: %(languages)s.')
            % {"languages": ", ".join(limits.languages)},
        )
    return language


def _parse_text_message(data: dict[str, Any], limits: Limits) -> TypedText:
    """``{"type": "text", "text": "..."}``: stripped, 1 to max_text_chars characters."""
    text = _string_field(data, "text")
    if _CONTROL_CHARS.search(text):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            'Field "text" contains control characters (only newline and tab are allowed).',
        )
    text = text.strip()
    if not text:
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "text" is empty.')
    if len(text) > limits.max_text_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"Text is longer than {limits.max_text_chars} characters."
        )
    return TypedText(text=text)


def _parse_stop(data: dict[str, Any], limits: Limits) -> Stop:
    """``{"type": "stop"}``."""
    return Stop()


def _parse_audio_end(data: dict[str, Any], limits: Limits) -> AudioEnd:
    """``{"type": "audio_end"}``."""
    return AudioEnd()


def _parse_activity_start(data: dict[str, Any], limits: Limits) -> ActivityStart:
    """``{"type": "activity_start"}``."""
    return ActivityStart()


def _parse_activity_end(data: dict[str, Any], limits: Limits) -> ActivityEnd:
    """``{"type": "activity_end"}``."""
    return ActivityEnd()


def _parse_ack(data: dict[str, Any], limits: Limits) -> Ack:
    """``{"type": "ack", "audio": N}``: N a whole number, 0 or more (at most 15 digits)."""
    if "audio" not in data:
        raise ProtocolError(ErrorCode.INVALID_FIELD, 'Field "audio" is missing.')
    value = data["audio"]
    if not isinstance(value, JsonNumber):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f'Field "audio" must be a number, not {_describe(value)}.'
        )
    if not _ACK_COUNT.fullmatch(value.literal):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            'Field "audio" must be a whole number of frames, 0 or more (at most 15 digits).',
        )
    return Ack(audio=int(value.literal))


_TextParser = Callable[[dict[str, Any], Limits], ControlMessage]
_TEXT_PARSERS: dict[str, _TextParser] = {
    "start": _parse_start,
    "text": _parse_text_message,
    "stop": _parse_stop,
    "audio_end": _parse_audio_end,
    "ack": _parse_ack,
    "activity_start": _parse_activity_start,
    "activity_end": _parse_activity_end,
}


def _show(value: str) -> str:
    """A client's string in an error message: quoted and escaped as JSON, and cut short."""
    shown = json.dumps(value[:_SHOWN_CHARS])  # ASCII only: no control or lone surrogate left
    return f"{shown}..." if len(value) > _SHOWN_CHARS else shown


def _describe(value: Any) -> str:
    """The JSON type of a decoded value, for error messages."""
    match value:
        case dict():
            return "an object"
        case list():
            return "an array"
        case str():
            return "a string"
        case bool():
            return "a boolean"
        case JsonNumber():
            return "a number"
        case None:
            return "null"
    return "an unknown value"
