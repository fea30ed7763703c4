"""The records and settings of the Gemini Live stand-in, and client key normalisation.

:class:`Behaviour` holds the knobs of the synthetic model and :class:`Connection`
everything one client connection sent and received, :class:`ModelContext` what a session
resumption handle restores. None of them imports Django.

The SDK mixes snake_case and camelCase keys (``realtime_input``, ``mime_type``,
``turnComplete``...), as proto JSON allows. Every client message is normalised to
camelCase on arrival (:func:`camelize`), except user-defined maps such as function ``args``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# User data (function args and results, JSON schemas) is kept exactly as sent...
_OPAQUE_KEYS = frozenset(
    {"args", "response", "default", "example", "parametersJsonSchema", "responseJsonSchema"}
)
# ...and so are the user-chosen keys of these maps, whose values are protocol objects.
_USER_KEYED_MAPS = frozenset({"properties"})


@dataclass
class Behaviour:
    """How the stand-in's synthetic model behaves; tests may change it between turns.

    Faults: ``setup_delay_s`` delays every setupComplete (and refusal);
    ``refuse_connections`` closes every new setup with 1011, ``refuse_resumption``
    every setup naming a handle with 1008 (as an unknown handle always is);
    ``go_away_after_s`` (None: never) sends goAway that long after setupComplete,
    announcing ``go_away_time_left_s``, and closes with 1000 when that time is up.
    ``resumption_updates=False`` sends no session resumption handles at all.

    Tools: a user text containing ``note_trigger`` (None: off) makes the model call
    ``save_note`` instead of replying: ``"note: Title | body"`` (without ``|``, the text
    is both, the title cut to 60 characters). Every response to a call the model
    made (this way or with ``StandIn.call_tool``) gets a short reply turn that quotes it.

    Benchmarks (:mod:`standin.probe`): ``analyse_audio=False`` skips
    the voice-activity detector (no replies to audio). ``bench_talk_s`` > 0 makes the
    model speak stamped silence once the connection's first stamped input arrives: bursts
    of that length, ``bench_silence_s`` apart, each with output transcription and ending
    in turnComplete, until the text ``bench:end`` (answered with ``bench-end``), or the
    end of the burst playing when goAway is sent.
    """

    speech_gap_s: float = 0.4
    silence_rms: float = 200.0
    max_utterance_s: float = 5.0
    reply_audio_s: float = 0.6
    reply_tone_hz: float = 660.0
    audio_chunk_s: float = 0.1
    reply_delay_s: float = 0.0
    chunk_interval_s: float = 0.0
    prompt_tokens_per_turn: int = 100
    response_tokens_per_turn: int = 50
    resumption_updates: bool = True
    setup_delay_s: float = 0.0
    refuse_resumption: bool = False
    refuse_connections: bool = False
    go_away_after_s: float | None = None
    go_away_time_left_s: float = 1.0
    note_trigger: str | None = "note:"
    analyse_audio: bool = True
    bench_talk_s: float = 0.0
    bench_silence_s: float = 0.0


@dataclass(frozen=True)
class ModelContext:
    """What the synthetic model knows of a session; a session resumption handle restores it."""

    turns_done: int = 0
    audio_s: float = 0.0
    frame_count: int = 0
    frame_size: tuple[int, int] | None = None
    texts: tuple[str, ...] = ()


@dataclass(eq=False)
class Connection:
    """Everything one client connection sent and received, in order.

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
    texts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_cancellations: list[str] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list, repr=False)
    opened_at: float | None = None
    setup_complete_at: float | None = None
    go_away_at: float | None = None
    closed_at: float | None = None
    resumption_handle_sent: str | None = None
    resumed_from: str | None = None
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
            audio=list(self.audio), frames=list(self.frames), texts=list(self.texts),
            tool_calls=list(self.tool_calls), tool_cancellations=list(self.tool_cancellations),
            tool_responses=list(self.tool_responses), replies=list(self.replies),
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
