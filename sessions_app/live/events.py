"""SDK server messages turned into the relay's own small event types.

One Gemini server message can carry several fields at once (model parts, transcriptions,
turnComplete, usage, goAway...). ``events_from_message`` returns one event for each, in the
order a consumer must apply them: content and transcriptions before the turn ends.

A message is read defensively, since the service (or anything between) may send
nonsense: text is cut to ``MAX_TEXT_CHARS`` and cleared of characters no database
stores (NUL and other C0 controls, lone surrogates); audio that is not PCM16 (an odd
number of bytes) is dropped; token counts are held to 0..``MAX_TOKEN_COUNT`` and
modalities to the known ones (others count as ``OTHER``); a turnCompleteReason that is
not an enum name becomes ``UNKNOWN``; a function call without an id (it could never be
answered) is dropped. Each such repair is reported as a :class:`Dropped` event, for the
relay to count; it is never passed on.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from google.genai import types

MAX_TEXT_CHARS = 2000  # longest text fragment passed on: a real one is a few words
MAX_TOKEN_COUNT = 2**31 - 1  # per count of one message; a session's sums stay far from 2**63
MAX_TIME_LEFT_CHARS = 64
MODALITIES = frozenset(modality.value for modality in types.MediaModality)
OTHER_MODALITY = "OTHER"
UNKNOWN_REASON = "UNKNOWN"
_REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class AudioOut:
    """Model speech: PCM16LE mono 24 kHz."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class TextOut:
    """A fragment of a text reply (TEXT modality)."""

    text: str


@dataclass(frozen=True)
class InputTranscript:
    """A fragment of the transcription of the user's speech."""

    text: str


@dataclass(frozen=True)
class OutputTranscript:
    """A fragment of the transcription of the model's speech."""

    text: str


@dataclass(frozen=True)
class Interrupted:
    """The user barged in: queued model audio must be dropped now."""


@dataclass(frozen=True)
class TurnComplete:
    """The model finished its turn.

    ``reason`` is the service's ``turnCompleteReason`` when it ended the turn for a cause
    (a refused input, say). ``in_progress`` is set when the service says more output
    follows (``interactionStatus: IN_PROGRESS``): the turn is not over yet.
    """

    reason: str | None = None
    in_progress: bool = False


@dataclass(frozen=True)
class Usage:
    """Tokens reported for one response."""

    prompt_tokens: int
    response_tokens: int
    total_tokens: int  # the service's total: thinking and tool-use prompt tokens included
    details: dict[str, int] = field(default_factory=dict)
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0

    @property
    def prompt_by_modality(self) -> dict[str, int]:
        """Prompt tokens per modality, e.g. ``{"AUDIO": 90, "TEXT": 10}``."""
        return _by_modality(self.details, "prompt")

    @property
    def response_by_modality(self) -> dict[str, int]:
        """Response tokens per modality."""
        return _by_modality(self.details, "response")

    @property
    def tool_use_by_modality(self) -> dict[str, int]:
        """Tool-use prompt tokens per modality."""
        return _by_modality(self.details, "tool_use")


@dataclass(frozen=True)
class FunctionCall:
    """One function the model asks the client to run; answer it with the same ``id``."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionResult:
    """The answer to one FunctionCall, for ``LiveRelay.send_tool_response``.

    ``scheduling`` (SILENT, WHEN_IDLE, INTERRUPT) tells a model that runs calls without
    blocking what to do with it; None for the others.
    """

    id: str
    name: str
    response: dict[str, Any]
    scheduling: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """The model calls one or more functions and waits for their responses."""

    calls: tuple[FunctionCall, ...]


@dataclass(frozen=True)
class ToolCallCancellation:
    """Earlier tool calls (by id) must not be answered: the user interrupted the model."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class GoAway:
    """The server will close this connection soon."""

    time_left: str | None


@dataclass(frozen=True)
class ResumptionUpdate:
    """The newest session resumption handle."""

    handle: str | None
    resumable: bool


@dataclass(frozen=True)
class UpstreamClosed:
    """The upstream connection ended; ``error`` is None for a clean close.

    ``code`` and ``reason`` are the service's last WebSocket close, when there was one;
    ``internal`` is set when the relay itself failed, not the connection.
    """

    error: str | None
    code: int | None = None
    reason: str = ""
    internal: bool = False


@dataclass(frozen=True)
class Dropped:
    """Part of a server message that was repaired or left out (``what``: which, how)."""

    what: str


@dataclass(frozen=True)
class Reconnecting:
    """The upstream connection was lost unexpectedly; the relay is resuming it."""

    error: str | None


@dataclass(frozen=True)
class Resumed:
    """The conversation goes on over a new upstream connection.

    ``how`` is ``"handover"`` (after goAway, seamless), ``"reconnect"`` (resumed after a
    loss) or ``"fresh"`` (the service would not resume: a new session, seeded with the
    recent transcript).
    """

    how: str


LiveEvent = (
    AudioOut
    | TextOut
    | InputTranscript
    | OutputTranscript
    | Interrupted
    | TurnComplete
    | Usage
    | ToolCall
    | ToolCallCancellation
    | GoAway
    | ResumptionUpdate
    | UpstreamClosed
    | Reconnecting
    | Resumed
    | Dropped
)


def events_from_message(message: types.LiveServerMessage) -> list[LiveEvent]:
    """Every event one server message carries, in the order they must be applied."""
    events: list[LiveEvent] = []
    content = message.server_content
    if content is not None:
        events.extend(_content_events(content))
    if message.tool_call is not None:
        events.extend(_tool_call_events(message.tool_call))
    if message.tool_call_cancellation is not None:
        ids = tuple(message.tool_call_cancellation.ids or ())
        if ids:
            events.append(ToolCallCancellation(ids=ids))
    if message.usage_metadata is not None:
        events.extend(_usage_events(message.usage_metadata))
    if message.session_resumption_update is not None:
        update = message.session_resumption_update
        events.append(ResumptionUpdate(handle=update.new_handle, resumable=bool(update.resumable)))
    if message.go_away is not None:
        time_left = message.go_away.time_left
        events.append(GoAway(time_left=time_left[:MAX_TIME_LEFT_CHARS] if time_left else None))
    return events


def _content_events(content: types.LiveServerContent) -> list[LiveEvent]:
    """Events of one serverContent, the turn's end last."""
    events: list[LiveEvent] = []
    if content.input_transcription is not None:
        events.extend(_text_events(InputTranscript, content.input_transcription.text))
    if content.model_turn is not None:
        for part in content.model_turn.parts or ():
            events.extend(_part_events(part))
    if content.output_transcription is not None:
        events.extend(_text_events(OutputTranscript, content.output_transcription.text))
    if content.interrupted:
        events.append(Interrupted())
    if content.turn_complete:
        status = content.interaction_status
        events.append(
            TurnComplete(
                reason=_reason(content.turn_complete_reason),
                in_progress=status == types.InteractionStatus.IN_PROGRESS,
            )
        )
    return events


def _part_events(part: types.Part) -> list[LiveEvent]:
    """The audio or text of one model part; audio that is not PCM16 is dropped."""
    if part.inline_data is not None and part.inline_data.data:
        mime = part.inline_data.mime_type or ""
        if not mime.startswith("audio/"):
            return []
        if len(part.inline_data.data) % 2:
            return [Dropped("audio of an odd length")]
        return [AudioOut(data=part.inline_data.data)]
    if part.text and not part.thought:
        return _text_events(TextOut, part.text)
    return []


def _text_events(
    kind: type[InputTranscript | OutputTranscript | TextOut], text: str | None
) -> list[LiveEvent]:
    """A text fragment as ``kind``, storable and at most MAX_TEXT_CHARS long."""
    if not text:
        return []
    events: list[LiveEvent] = []
    clean = _UNSTORABLE.sub("", text)
    if clean != text:
        events.append(Dropped("unstorable characters in text"))
    if len(clean) > MAX_TEXT_CHARS:
        clean = clean[:MAX_TEXT_CHARS]
        events.append(Dropped(f"text over {MAX_TEXT_CHARS} characters"))
    if clean:
        events.append(kind(text=clean))
    return events


def _reason(reason: types.TurnCompleteReason | None) -> str | None:
    """A turnCompleteReason worth telling (None for none or unspecified); odd ones: UNKNOWN."""
    value = getattr(reason, "value", None)
    if value is None or value == types.TurnCompleteReason.TURN_COMPLETE_REASON_UNSPECIFIED:
        return None
    return value if isinstance(value, str) and _REASON.match(value) else UNKNOWN_REASON


def _tool_call_events(tool_call: types.LiveServerToolCall) -> list[LiveEvent]:
    """The calls of a toolCall; one without an id can never be answered, and is dropped."""
    calls = tuple(_function_call(call) for call in tool_call.function_calls or ())
    events: list[LiveEvent] = [Dropped("function call without an id") for c in calls if not c.id]
    answerable = tuple(call for call in calls if call.id)
    if answerable:
        events.append(ToolCall(calls=answerable))
    return events


def _usage_events(usage: types.UsageMetadata) -> list[LiveEvent]:
    """Token counts, with per-modality details keyed like ``prompt_AUDIO``; counts out of
    range are held to 0..MAX_TOKEN_COUNT (and reported)."""
    held: list[LiveEvent] = []

    def count(value: int | None) -> int:
        number = value or 0
        if not 0 <= number <= MAX_TOKEN_COUNT:
            held.append(Dropped("token count out of range"))
            number = min(max(number, 0), MAX_TOKEN_COUNT)
        return number

    details: dict[str, int] = {}
    for prefix, counts in (
        ("prompt", usage.prompt_tokens_details),
        ("response", usage.response_tokens_details),
        ("tool_use", usage.tool_use_prompt_tokens_details),
    ):
        for item in counts or ():
            tokens = count(item.token_count)
            if item.modality is not None and tokens:
                key = f"{prefix}_{_modality(item.modality)}"
                details[key] = min(details.get(key, 0) + tokens, MAX_TOKEN_COUNT)
    event = Usage(
        prompt_tokens=count(usage.prompt_token_count),
        response_tokens=count(usage.response_token_count),
        total_tokens=count(usage.total_token_count),
        details=details,
        thoughts_tokens=count(usage.thoughts_token_count),
        tool_use_prompt_tokens=count(usage.tool_use_prompt_token_count),
    )
    return [*held, event]


def _modality(modality: types.MediaModality) -> str:
    """A modality's name if it is one the SDK knows, else ``OTHER``."""
    value = getattr(modality, "value", None)
    return value if isinstance(value, str) and value in MODALITIES else OTHER_MODALITY


def _function_call(call: types.FunctionCall) -> FunctionCall:
    """The relay's view of one SDK function call; missing fields become empty."""
    return FunctionCall(id=call.id or "", name=call.name or "", args=dict(call.args or {}))


def _by_modality(details: dict[str, int], prefix: str) -> dict[str, int]:
    """The counts of ``details`` whose key starts with ``prefix_``, keyed by modality."""
    start = f"{prefix}_"
    return {key[len(start) :]: count for key, count in details.items() if key.startswith(start)}
