"""The records and settings of the Gemini Live stand-in, and client key normalisation.

:class:`Behaviour` holds the knobs of the synthetic model and :class:`Connection`
everything one client connection sent and received, :class:`ModelContext` what a session
resumption handle restores, :class:`PendingCall` a function call awaiting its response.
None of them imports Django.

The SDK mixes snake_case and camelCase keys (``realtime_input``, ``mime_type``,
``turnComplete``...), as proto JSON allows. Every client message is normalised to
camelCase on arrival (:func:`camelize`), except user-defined maps such as function ``args``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from standin.billing import Segment
from standin.profiles import ModelProfile

# User data (function args and results, JSON schemas) is kept exactly as sent...
_OPAQUE_KEYS = frozenset(
    {"args", "response", "default", "example", "parametersJsonSchema", "responseJsonSchema"}
)
# ...and so are the user-chosen keys of these maps, whose values are protocol objects.
_USER_KEYED_MAPS = frozenset({"properties"})


@dataclass
class Behaviour:
    """How the stand-in's synthetic model behaves; tests may change it between turns.

    Replies (always AUDIO: a ``reply_tone_hz`` tone of ``reply_audio_s`` in chunks of
    ``audio_chunk_s``, with output transcription): ``reply_delay_s`` before each reply,
    ``chunk_interval_s`` between its steps. Utterances: speech louder than
    ``silence_rms`` ends after ``speech_gap_s`` of quiet or ``max_utterance_s``;
    ``analyse_audio=False`` skips the detector (no replies to audio). ``barge_in``: speech
    that starts while the model speaks interrupts it. ``late_input_transcription``: the
    user's words come in several fragments, the last ones after the reply's first audio
    chunks (off: all before the reply). ``activity_window_s``: under
    ``TURN_INCLUDES_ONLY_ACTIVITY``, frames seen that long before a user text still count.
    ``in_progress_split``: on 3.8 models a reply is split by a turnComplete with
    ``interactionStatus: IN_PROGRESS``.

    Usage on every final turnComplete (:mod:`standin.billing`): the prompt bills the
    whole context as it stands before the turn, the response the reply audio actually
    sent; ``prompt_tokens_per_turn`` and ``response_tokens_per_turn`` (None: billed so)
    fix either to a constant instead (the prompt's details then name the turn's input
    modality only). ``thoughts_tokens_per_turn`` (thinking models, every turn that
    answers) and ``tool_use_tokens_per_turn`` (a turn answering a function response) are
    fixed; the total is the sum of all four.

    Triggers in a user text: ``refuse_trigger`` (None: off) gets only a turnComplete with
    ``turnCompleteReason: PROHIBITED_INPUT_CONTENT``; ``note_trigger`` makes the model call
    ``save_note``: ``"note: Title | body"`` (without ``|``, the text is both, the title
    cut to 60 characters). A response to a call the model made (this way or with
    ``StandIn.call_tool``) is answered as the call's behaviour and scheduling say
    (:mod:`standin.tools`).

    Faults: ``setup_delay_s`` delays every setupComplete (and refusal);
    ``refuse_connections`` closes every new setup with 1011, ``refuse_resumption``
    every setup naming a handle with 1008 (as an unknown handle always is);
    ``refuse_overlapping_resumption`` a setup naming a handle of a connection still open
    with 1011; ``handle_ttl_s`` (None: never) expires handles (1007) that much after they
    were sent. ``go_away_after_s`` (None: never) sends goAway that long after
    setupComplete, announcing ``go_away_time_left_s``, and closes with 1000 when that
    time is up. ``resumption_updates=False`` sends no session resumption handles at all.
    ``unknown_kind_mid_reply`` (None: off) sends a message of that unknown kind in the
    middle of every reply, ``malformed_mid_reply`` a malformed JSON text frame.

    Benchmarks (:mod:`standin.probe`): ``bench_talk_s`` > 0 makes the model speak stamped
    silence once the connection's first stamped input arrives: bursts of that length,
    ``bench_silence_s`` apart, each with output transcription and ending in turnComplete,
    until the text ``bench:end`` (answered with ``bench-end``), or the end of the burst
    playing when goAway is sent. ``bench_phase`` starts each connection's first burst
    after its own share of one talk-and-silence period (taken from its tag), as the turns
    of people who do not talk to each other fall.
    """

    speech_gap_s: float = 0.4
    silence_rms: float = 200.0
    max_utterance_s: float = 5.0
    reply_audio_s: float = 0.6
    reply_tone_hz: float = 660.0
    audio_chunk_s: float = 0.1
    reply_delay_s: float = 0.0
    chunk_interval_s: float = 0.0
    barge_in: bool = True
    late_input_transcription: bool = True
    activity_window_s: float = 1.0
    in_progress_split: bool = True
    prompt_tokens_per_turn: int | None = None
    response_tokens_per_turn: int | None = None
    thoughts_tokens_per_turn: int = 20
    tool_use_tokens_per_turn: int = 10
    refuse_trigger: str | None = "refuse:"
    note_trigger: str | None = "note:"
    resumption_updates: bool = True
    setup_delay_s: float = 0.0
    refuse_resumption: bool = False
    refuse_connections: bool = False
    refuse_overlapping_resumption: bool = False
    handle_ttl_s: float | None = None
    go_away_after_s: float | None = None
    go_away_time_left_s: float = 1.0
    unknown_kind_mid_reply: str | None = None
    malformed_mid_reply: bool = False
    analyse_audio: bool = True
    bench_talk_s: float = 0.0
    bench_silence_s: float = 0.0
    bench_phase: bool = False


@dataclass(frozen=True)
class ModelContext:
    """What the synthetic model knows of a session; a session resumption handle restores it.

    ``segments`` is the billed context (:class:`standin.billing.Ledger`) without the
    system instruction, which the resuming setup states again.
    """

    turns_done: int = 0
    audio_s: float = 0.0
    frame_count: int = 0
    frame_size: tuple[int, int] | None = None
    texts: tuple[str, ...] = ()
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class PendingCall:
    """A function call the model made and awaits a response to (on any connection)."""

    call_id: str
    name: str
    connection: int
    conversation: int
    behaviour: str  # BLOCKING or NON_BLOCKING


@dataclass(eq=False)
class Connection:
    """Everything one client connection sent and received, in order.

    From the setup: ``profile`` (None if the model id was refused), ``turn_coverage``
    (``realtimeInputConfig.turnCoverage`` or the model's default), ``media_resolution``
    and ``thinking_level`` (None unless set). ``conversation`` is the index of the first
    connection of its resumption chain (None until the setup is accepted).
    ``replies`` holds every message sent; a raw text frame as ``{"raw": text}``.
    ``usage`` holds every usageMetadata sent, in order (kept whatever the record limit:
    they are small). ``frame_arrivals[i]`` is the wall-clock time (``time.time()``) at
    which ``frames[i]`` arrived: both lists are kept under the same record limit.
    ``reply_marks[i]`` is how many client ``messages`` had arrived when ``replies[i]`` was
    sent: the order of the two, for tests of what a reply waited for.

    ``tool_calls`` are the function calls the model made on it (``{id, name, args}``),
    ``tool_cancellations`` the call ids it withdrew, ``tool_responses`` what came back.

    Times (``opened_at``, ``setup_complete_at``, ``go_away_at``, ``closed_at``) are the
    stand-in's ``loop.time()``. ``resumption_handle_sent`` is the handle the setup asked
    for (valid or not), ``resumed_from`` the handle whose context the connection restored.
    """

    index: int
    path: str
    headers: dict[str, str]
    had_api_key: bool = False
    setup: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list, repr=False)
    audio: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    frames: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    frame_arrivals: list[float] = field(default_factory=list, repr=False)
    texts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_cancellations: list[str] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list, repr=False)
    reply_marks: list[int] = field(default_factory=list, repr=False)
    usage: list[dict[str, Any]] = field(default_factory=list, repr=False)
    opened_at: float | None = None
    setup_complete_at: float | None = None
    go_away_at: float | None = None
    closed_at: float | None = None
    resumption_handle_sent: str | None = None
    resumed_from: str | None = None
    profile: ModelProfile | None = None
    turn_coverage: str | None = None
    media_resolution: str | None = None
    thinking_level: str | None = None
    conversation: int | None = None
    aborted: bool = False
    closed: bool = False
    close_code: int | None = None
    close_reason: str = ""
    truncated: bool = False
    recorded_bytes: int = field(default=0, repr=False)

    def audio_bytes(self) -> bytes:
        """The data of every recorded realtime audio chunk, concatenated."""
        return b"".join(data for _, data in self.audio)

    def snapshot(self) -> Connection:
        """A copy whose lists no longer change with the live connection."""
        return replace(
            self, headers=dict(self.headers), messages=list(self.messages),
            audio=list(self.audio), frames=list(self.frames),
            frame_arrivals=list(self.frame_arrivals), texts=list(self.texts),
            tool_calls=list(self.tool_calls), tool_cancellations=list(self.tool_cancellations),
            tool_responses=list(self.tool_responses), replies=list(self.replies),
            reply_marks=list(self.reply_marks), usage=list(self.usage),
        )  # fmt: skip

    def summary(self) -> str:
        """One line describing the record, for error messages."""
        state = "closed" if self.closed else "open"
        state += f" ({self.close_code})" if self.closed else ""
        state += " aborted" if self.aborted else ""
        resumed = f" resumed_from={self.resumed_from}" if self.resumed_from else ""
        return (
            f"#{self.index} {state} setup={self.setup is not None}{resumed}"
            f" messages={len(self.messages)} audio={len(self.audio)} frames={len(self.frames)}"
            f" texts={self.texts!r} replies={len(self.replies)}"
            f" tool_calls={len(self.tool_calls)} tool_responses={len(self.tool_responses)}"
        )


def camelize(value: Any) -> Any:
    """Proto-JSON key normalisation: snake_case keys become camelCase, recursively."""
    if isinstance(value, list):
        return [camelize(item) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key) if isinstance(key, str) else key
        if name in _OPAQUE_KEYS:
            result[name] = item
        elif name in _USER_KEYED_MAPS and isinstance(item, dict):
            result[name] = {user_key: camelize(schema) for user_key, schema in item.items()}
        else:
            result[name] = camelize(item)
    return result


def _camel(name: str) -> str:
    """``mime_type`` -> ``mimeType``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
