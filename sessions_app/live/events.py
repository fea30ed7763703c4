"""SDK server messages turned into the relay's own small event types.

One Gemini server message can carry several fields at once (model parts, transcriptions,
turnComplete, usage, goAway...). ``events_from_message`` returns one event for each, in the
order a consumer must apply them: content and transcriptions before the turn ends.
"""

from dataclasses import dataclass, field
from typing import Any

from google.genai import types


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
)


def events_from_message(message: types.LiveServerMessage) -> list[LiveEvent]:
    """Every event one server message carries, in the order they must be applied."""
    events: list[LiveEvent] = []
    content = message.server_content
    if content is not None:
        events.extend(_content_events(content))
    if message.tool_call is not None:
        calls = tuple(_function_call(call) for call in message.tool_call.function_calls or ())
        if calls:
            events.append(ToolCall(calls=calls))
    if message.tool_call_cancellation is not None:
        ids = tuple(message.tool_call_cancellation.ids or ())
        if ids:
            events.append(ToolCallCancellation(ids=ids))
    if message.usage_metadata is not None:
        events.append(_usage_event(message.usage_metadata))
    if message.session_resumption_update is not None:
        update = message.session_resumption_update
        events.append(ResumptionUpdate(handle=update.new_handle, resumable=bool(update.resumable)))
    if message.go_away is not None:
        events.append(GoAway(time_left=message.go_away.time_left))
    return events


def _content_events(content: types.LiveServerContent) -> list[LiveEvent]:
    """Events of one serverContent, the turn's end last."""
    events: list[LiveEvent] = []
    if content.input_transcription is not None and content.input_transcription.text:
        events.append(InputTranscript(text=content.input_transcription.text))
    if content.model_turn is not None:
        for part in content.model_turn.parts or ():
            if part.inline_data is not None and part.inline_data.data:
                mime = part.inline_data.mime_type or ""
                if mime.startswith("audio/"):
                    events.append(AudioOut(data=part.inline_data.data))
            elif part.text and not part.thought:
                events.append(TextOut(text=part.text))
    if content.output_transcription is not None and content.output_transcription.text:
        events.append(OutputTranscript(text=content.output_transcription.text))
    if content.interrupted:
        events.append(Interrupted())
    if content.turn_complete:
        status = content.interaction_status
        reason = content.turn_complete_reason
        unspecified = types.TurnCompleteReason.TURN_COMPLETE_REASON_UNSPECIFIED
        events.append(
            TurnComplete(
                reason=reason.value if reason is not None and reason != unspecified else None,
                in_progress=status == types.InteractionStatus.IN_PROGRESS,
            )
        )
    return events


def _usage_event(usage: types.UsageMetadata) -> Usage:
    """Token counts, with per-modality details keyed like ``prompt_AUDIO``."""
    details: dict[str, int] = {}
    for prefix, counts in (
        ("prompt", usage.prompt_tokens_details),
        ("response", usage.response_tokens_details),
        ("tool_use", usage.tool_use_prompt_tokens_details),
    ):
        for count in counts or ():
            if count.modality is not None and count.token_count:
                key = f"{prefix}_{count.modality.value}"
                details[key] = details.get(key, 0) + count.token_count
    return Usage(
        prompt_tokens=usage.prompt_token_count or 0,
        response_tokens=usage.response_token_count or 0,
        total_tokens=usage.total_token_count or 0,
        details=details,
        thoughts_tokens=usage.thoughts_token_count or 0,
        tool_use_prompt_tokens=usage.tool_use_prompt_token_count or 0,
    )


def _function_call(call: types.FunctionCall) -> FunctionCall:
    """The relay's view of one SDK function call; missing fields become empty."""
    return FunctionCall(id=call.id or "", name=call.name or "", args=dict(call.args or {}))


def _by_modality(details: dict[str, int], prefix: str) -> dict[str, int]:
    """The counts of ``details`` whose key starts with ``prefix_``, keyed by modality."""
    start = f"{prefix}_"
    return {key[len(start) :]: count for key, count in details.items() if key.startswith(start)}
