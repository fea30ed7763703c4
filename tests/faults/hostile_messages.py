"""Hypothesis strategies for hostile Gemini Live server traffic, and a checker for what the
browser receives meanwhile.

The strategies start from the real shapes of ``BidiGenerateContentServerMessage`` (built by
:mod:`standin.hostile`) and the kinds nobody knows yet, then break them: a wrong JSON type
at any path, a key dropped, nulls, a string of about a megabyte, base64 garbage or an odd
number of bytes in audio, negative, huge and fractional token counts, a turnComplete out
of turn; or they send text frames that are no JSON object at all (malformed, a bare
scalar or array, nesting too deep for a parser, over the SDK's 1 MiB frame limit).

:func:`check_browser_frame` holds every frame the browser gets to the documented protocol
(``sessions_app/outbound.py``, docs/protocol.md "Message fields"): a JSON text frame is an
object with a known ``type`` and only that type's fields, each of its JSON type; a binary
frame is model speech (the audio kind byte, then PCM16: a non-zero, even length).
"""

import json
import types as pytypes
from dataclasses import MISSING, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from hypothesis import strategies as st

from sessions_app import outbound
from sessions_app.live import events
from sessions_app.models import TranscriptEntry
from sessions_app.protocol import Kind
from standin import hostile
from standin.protocol import OUTPUT_MIME, Outgoing
from standin.server import UNKNOWN_KIND

MAX_TYPED_CHARS = 4000  # SHARE_MAX_TEXT_CHARS: a typed line is echoed whole
MAX_SENTENCE_CHARS = 200  # a message for people (turn refusals, errors)
MAX_BIGINT = 2**63 - 1

# Any code point, lone surrogates and NUL included.
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=8,
)
counts = (
    st.integers(min_value=0, max_value=500)
    | st.integers(min_value=-(2**40), max_value=-1)
    | st.integers(min_value=2**31, max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.just(3.0)
)
modalities = st.sampled_from(["AUDIO", "TEXT", "IMAGE", "VIDEO", "audio", "HOLOGRAM"]) | any_text
reasons = st.sampled_from(
    ["PROHIBITED_INPUT_CONTENT", "NEED_MORE_INPUT", "TURN_COMPLETE_REASON_UNSPECIFIED",
     "A_REASON_FROM_NEXT_YEAR", "not a reason", ""]
) | any_text  # fmt: skip
durations = st.sampled_from(["0s", "0.2s", "1.5s", "4s", "9" * 40 + "s", "soon", "-3s", ""])
unknown_kinds = st.sampled_from(
    [UNKNOWN_KIND, "voiceActivity2", "sessionWarning", "billing", "code", "error"]
) | st.text(st.characters(min_codepoint=65, max_codepoint=122), min_size=1, max_size=12)
even_pcm = st.binary(max_size=96).map(lambda data: data[: len(data) // 2 * 2])


@st.composite
def function_calls(draw: st.DrawFn) -> dict[str, Any]:
    """One functionCalls entry: a real tool or not, arguments right or not, an id or none."""
    name = draw(st.sampled_from(["save_note", "no_such_tool", ""]) | any_text)
    args = draw(
        st.fixed_dictionaries({"title": st.text(max_size=20), "body": st.text(max_size=40)})
        | st.dictionaries(any_text, json_values, max_size=3)
    )
    call_id = draw(st.none() | st.just("") | st.text(min_size=1, max_size=12))
    return hostile.function_call(name, args, call_id)


@st.composite
def usage_messages(draw: st.DrawFn) -> dict[str, Any]:
    """usageMetadata with any counts and per-modality details."""
    names = ["promptTokenCount", "responseTokenCount", "totalTokenCount", "thoughtsTokenCount",
             "toolUsePromptTokenCount"]  # fmt: skip
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    details = draw(
        st.dictionaries(
            st.sampled_from(
                ["promptTokensDetails", "responseTokensDetails", "toolUsePromptTokensDetails"]
            ),
            st.lists(st.tuples(modalities, counts), max_size=3),
            max_size=3,
        )
    )
    return hostile.usage({name: draw(counts) for name in chosen}, details)


def real_messages() -> st.SearchStrategy[dict[str, Any]]:
    """Server messages as the Live API sends them, each kind with its fields."""
    texts = any_text | st.sampled_from(["Hello ", "there. ", " "])
    return st.one_of(
        even_pcm.map(hostile.pcm_audio),
        st.builds(hostile.text_part, texts, thought=st.none() | st.booleans()),
        st.builds(
            hostile.transcription,
            st.sampled_from(["inputTranscription", "outputTranscription"]),
            texts,
        ),
        st.builds(
            hostile.turn_complete,
            st.none() | reasons,
            st.none() | st.sampled_from(["IN_PROGRESS", "IDLE", "WHATEVER"]),
            st.none() | usage_messages().map(lambda message: message["usageMetadata"]),
        ),
        st.sampled_from(["interrupted", "generationComplete", "waitingForInput"]).map(hostile.flag),
        usage_messages(),
        st.lists(function_calls(), max_size=3).map(hostile.tool_call),
        st.lists(st.text(max_size=12), max_size=3).map(hostile.tool_call_cancellation),
        durations.map(hostile.go_away),
        st.builds(
            hostile.resumption_update,
            st.sampled_from(["standin-0-1", "bogus-handle", ""]) | st.text(max_size=20),
            st.booleans(),
        ),
        st.builds(hostile.unknown_kind, unknown_kinds, json_values),
    )


@st.composite
def mutated(draw: st.DrawFn, message: dict[str, Any]) -> Outgoing:
    """``message`` as it is, or broken in one place (or, for audio, in its base64)."""
    places = hostile.paths(message)
    how = draw(st.sampled_from(["keep", "retype", "drop", "null", "inflate", "base64"]))
    if how == "keep" or not places:
        return message
    path = draw(st.sampled_from(places))
    if how == "retype":
        return hostile.set_at(message, path, draw(json_values))
    if how == "drop":
        return hostile.drop_at(message, path)
    if how == "null":
        return hostile.set_at(message, path, None)
    strings = [place for place in places if isinstance(_at(message, place), str)]
    if how == "inflate" and strings:
        place = draw(st.sampled_from(strings))
        size = draw(st.sampled_from([64 * 1024, hostile.MEGABYTE - 8192]))
        return hostile.set_at(message, place, hostile.inflate(_at(message, place), size))
    audio = "serverContent" in message
    data = [p for p in places if audio and p[-1] == "data" and isinstance(_at(message, p), str)]
    if how == "base64" and data:
        corruption = draw(st.sampled_from(hostile.BASE64_CORRUPTIONS))
        broken = hostile.corrupt_base64(_at(message, data[0]), corruption)
        return hostile.set_at(message, data[0], broken)
    return message


@st.composite
def raw_frames(draw: st.DrawFn) -> str:
    """A text frame that is no JSON object: malformed, a bare scalar or array, cut short,
    nested too deep, or (rarely) over the SDK's 1 MiB frame limit."""
    how = draw(st.sampled_from(["text", "scalar", "cut", "deep", "deep", "oversized"]))
    if how == "text":
        return draw(st.text(max_size=40))
    if how == "scalar":
        return json.dumps(draw(json_values))
    if how == "cut":
        whole = json.dumps(draw(real_messages()))
        return whole[: draw(st.integers(min_value=1, max_value=max(1, len(whole) - 1)))]
    if how == "deep":
        return hostile.deep_nesting(draw(st.sampled_from([200, 5000, 100_000])))
    return json.dumps(hostile.audio("A" * (hostile.MEGABYTE + 1024), OUTPUT_MIME))


@st.composite
def hostile_messages(draw: st.DrawFn) -> Outgoing:
    """One hostile server message: a real kind, mutated or not, or a raw text frame."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(raw_frames())
    return draw(mutated(draw(real_messages())))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    """What is at ``path`` in ``value``."""
    for key in path:
        value = value[key]
    return value


def describe(message: Outgoing) -> str:
    """A short description of a hostile message, for a failure report."""
    text = message if isinstance(message, str) else json.dumps(message)
    return f"{text[:120]}... ({len(text)} chars)" if len(text) > 120 else text


# What the browser may receive.

MESSAGE_TYPES = {kind.type: kind for kind in outbound.MESSAGE_TYPES}
ROLES = set(TranscriptEntry.Role.values)
SOURCES = set(TranscriptEntry.Source.values)
MODALITY_NAMES = events.MODALITIES | {events.OTHER_MODALITY}


def check_browser_frame(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Check one frame the server sent the browser; return the JSON message (None for audio).

    Raises AssertionError naming what is malformed.
    """
    if raw.get("bytes") is not None:
        data = raw["bytes"]
        assert data[:1] == bytes((Kind.AUDIO,)), f"unknown binary kind {data[:1]!r}"
        assert len(data) > 1, "an empty audio frame"
        assert (len(data) - 1) % 2 == 0, f"not PCM16: {len(data) - 1} bytes"
        return None
    text = raw["text"]
    message = json.loads(text, parse_constant=_no_constant)
    assert isinstance(message, dict), f"not an object: {text[:80]}"
    kind = MESSAGE_TYPES.get(message.get("type"))  # type: ignore[arg-type]
    assert kind is not None, f"unknown type: {text[:80]}"
    hints = get_type_hints(kind)
    specs = {spec.name: spec for spec in fields(kind)}
    assert set(message) - {"type"} <= set(specs), f"undocumented fields: {text[:120]}"
    for name, spec in specs.items():
        if name not in message:
            assert spec.default is not MISSING or spec.default_factory is not MISSING, (
                f"{kind.type} without {name}"
            )
            continue
        assert message[name] is not None, f"{kind.type}.{name} is null"
        assert _matches(message[name], hints[name]), f"{kind.type}.{name}: {text[:120]}"
    _check_values(message)
    return message


def _no_constant(name: str) -> Any:
    """NaN and Infinity are no JSON."""
    raise AssertionError(f"{name} in a browser message")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a field is declared with."""
    origin = get_origin(hint)
    if origin in (Union, pytypes.UnionType):
        return any(_matches(value, arg) for arg in get_args(hint) if arg is not type(None))
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _check_values(message: dict[str, Any]) -> None:
    """What the page relies on beyond types: known roles, sane lengths, counts in range."""
    match message["type"]:
        case "transcript":
            assert message["role"] in ROLES, message
            assert message["source"] in SOURCES, message
            limit = MAX_TYPED_CHARS if message.get("final") else events.MAX_TEXT_CHARS
            assert 0 < len(message["text"]) <= limit, len(message["text"])
            assert message.get("turn", 1) >= 1
        case "turn_complete":
            assert message["turn"] >= 1
            assert len(message.get("reason", "")) <= 64
            assert len(message.get("message", "")) <= MAX_SENTENCE_CHARS
        case "usage":
            for name, value in message.items():
                if name.endswith("_by_modality"):
                    assert set(value) <= MODALITY_NAMES, value
                    assert all(0 <= count <= MAX_BIGINT for count in value.values()), value
                elif name != "type":
                    assert 0 <= value <= MAX_BIGINT, (name, value)
