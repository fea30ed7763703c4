"""Every server -> browser message, as a type, and the one function that encodes them.

JSON text frames carry one of the dataclasses below, its ``type`` first; a field left
``None`` is left out. Model speech goes as a binary frame (:func:`encode_audio`).
docs/protocol.md ("Message fields") lists every type and field; a test holds the two
together, both ways.
"""

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from django.utils.translation import gettext

from sessions_app.protocol import JSON_SEPARATORS, ErrorCode, Kind


@dataclass(frozen=True)
class Hello:
    """Sent once, when the socket is accepted."""

    type: ClassVar[str] = "hello"
    voices: list[str]
    default_voice: str
    max_message_bytes: int
    offline_demo: bool


@dataclass(frozen=True)
class Status:
    """A change of the session's state (``connecting``, ``live``, ..., ``ended``)."""

    type: ClassVar[str] = "status"
    state: str
    session_id: str
    mode: str | None = None  # on live
    voice: str | None = None
    model: str | None = None
    offline_demo: bool | None = None
    reason: str | None = None  # on ended
    message: str | None = None


@dataclass(frozen=True)
class Transcript:
    """A fragment of a speaker's line (``turn``), or a typed line echoed whole (``final``)."""

    type: ClassVar[str] = "transcript"
    role: str
    source: str
    text: str
    turn: int | None = None
    final: bool | None = None


@dataclass(frozen=True)
class TurnComplete:
    """The model finished a turn; its lines are stored."""

    type: ClassVar[str] = "turn_complete"
    turn: int
    interrupted: bool | None = None
    reason: str | None = None  # the service refused the turn...
    message: str | None = None  # ...and this says why, for people


@dataclass(frozen=True)
class Interrupted:
    """The reply stops here: queued model audio must be dropped now."""

    type: ClassVar[str] = "interrupted"
    turn: int


@dataclass(frozen=True)
class Usage:
    """The session's token totals so far, overall and per modality."""

    type: ClassVar[str] = "usage"
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    thoughts_tokens: int
    tool_use_prompt_tokens: int
    prompt_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    response_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    tool_use_prompt_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None  # estimated; left out when the model has no price


@dataclass(frozen=True)
class Note:
    """A note the model saved with its save_note tool."""

    type: ClassVar[str] = "note"
    id: int
    title: str
    body: str
    created_at: str  # ISO 8601, with the time zone


@dataclass(frozen=True)
class Error:
    """A refusal or a failure: ``code`` for programs, ``message`` for people."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    upstream_code: int | None = None  # the model service's close code and reason
    upstream_reason: str | None = None
    detail: str | None = None  # a technical line for the details view


ServerMessage = Hello | Status | Transcript | TurnComplete | Interrupted | Usage | Note | Error
MESSAGE_TYPES: tuple[type[ServerMessage], ...] = (
    Hello,
    Status,
    Transcript,
    TurnComplete,
    Interrupted,
    Usage,
    Note,
    Error,
)


def encode(message: ServerMessage) -> str:
    """One server message as compact JSON: its ``type``, then every field that is set.

    A ``message`` (a sentence for people) goes in the connection's active language: the
    fixed sentences are marked with gettext_noop where they are defined and translated here.
    """
    body: dict[str, Any] = {"type": message.type}
    for spec in fields(message):
        value = getattr(message, spec.name)
        if spec.name == "message" and isinstance(value, str):
            value = gettext(value)
        if value is not None:
            body[spec.name] = value
    return json.dumps(body, separators=JSON_SEPARATORS)


def error(code: ErrorCode, message: str, **details: Any) -> Error:
    """An ``error`` message; ``details`` are its upstream_code, upstream_reason, detail."""
    return Error(code=str(code), message=message, **details)


def encode_audio(pcm: bytes) -> bytes:
    """Model speech (PCM16LE mono 24 kHz) as a binary frame."""
    return bytes((Kind.AUDIO,)) + pcm
