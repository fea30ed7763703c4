"""Property-based tests of the protocol parsers: whatever arrives, a message or a ProtocolError.

Each property also checks what an accepted message promises (the consumer relies on it),
and that well-formed messages are never refused.
"""

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions_app import protocol
from sessions_app.protocol import ErrorCode, Kind, ProtocolError

LIMITS = protocol.Limits(
    max_message_bytes=4096, max_text_chars=200, voices=("Puck", "Kore"), default_voice="Puck"
)
FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
TYPES = ("start", "text", "stop")
ALLOWED_CONTROLS = {"\n", "\t"}

# Any code point, lone surrogates included (a JSON "\ud800" escape decodes to one).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=60)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)
field_values = st.sampled_from(["audio", "text", "Puck", "Kore", "", " hi ", "a\nb"]) | json_values
messages = st.fixed_dictionaries(
    {"type": st.sampled_from([*TYPES, "Start", "dance", ""]) | json_values},
    optional={
        "mode": field_values,
        "voice": field_values,
        "text": field_values,
        "extra": json_values,
    },
)


def check_accepted(message: protocol.ClientMessage) -> None:
    """What every accepted message promises the consumer."""
    match message:
        case protocol.TypedText(text=text):
            assert text
            assert text == text.strip()
            assert len(text) <= LIMITS.max_text_chars
            for char in text:
                assert not 0xD800 <= ord(char) <= 0xDFFF
                assert char in ALLOWED_CONTROLS or not (
                    ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0
                )
        case protocol.Start(modality=modality, voice=voice):
            assert modality in protocol.MODES.values()
            assert voice in LIMITS.voices
        case protocol.Stop():
            pass
        case protocol.AudioChunk(pcm=pcm):
            assert pcm
            assert len(pcm) % 2 == 0
        case protocol.Frame(data=data, mime_type="image/jpeg"):
            assert data.startswith(protocol.JPEG_MAGIC)
            assert data.endswith(protocol.JPEG_EOI)
        case protocol.Frame(data=data, mime_type="image/png"):
            assert data.startswith(protocol.PNG_MAGIC + protocol.PNG_IHDR)
            assert data.endswith(protocol.PNG_IEND)
        case _:
            raise AssertionError(f"not a client message: {message!r}")


def check_refused(error: ProtocolError) -> None:
    """A refusal carries a known code and a printable ASCII message."""
    assert isinstance(error.code, ErrorCode)
    assert error.message
    assert error.message.isascii()
    assert error.message.isprintable()


def parse_text_safely(raw: str) -> protocol.ClientMessage | None:
    """parse_text: a message (checked) or a ProtocolError (checked, None); nothing else."""
    try:
        message = protocol.parse_text(raw, LIMITS)
    except ProtocolError as error:
        check_refused(error)
        return None
    check_accepted(message)
    return message


def parse_binary_safely(raw: bytes) -> protocol.ClientMessage | None:
    """parse_binary: a message (checked) or a ProtocolError (checked, None); nothing else."""
    try:
        message = protocol.parse_binary(raw, LIMITS)
    except ProtocolError as error:
        check_refused(error)
        return None
    check_accepted(message)
    return message


@FUZZ
@given(st.binary(max_size=5000))
def test_random_bytes(raw: bytes) -> None:
    parse_binary_safely(raw)


prefixes = st.sampled_from(
    [
        b"",
        protocol.JPEG_MAGIC,
        b"\xff\xd8",
        protocol.PNG_MAGIC,
        protocol.PNG_MAGIC + protocol.PNG_IHDR,
    ]
)
suffixes = st.sampled_from([b"", protocol.JPEG_EOI, protocol.PNG_IEND])


@FUZZ
@given(
    st.sampled_from([*Kind, 0, 4, 0xFF]) | st.integers(0, 255),
    prefixes,
    st.binary(max_size=200),
    suffixes,
)
def test_binary_frames_near_the_real_kinds(
    kind: int, prefix: bytes, middle: bytes, suffix: bytes
) -> None:
    raw = bytes([kind]) + prefix + middle + suffix
    message = parse_binary_safely(raw)
    if kind == Kind.AUDIO and len(raw) > 1 and len(raw) % 2 == 1:
        assert message == protocol.AudioChunk(raw[1:])


@FUZZ
@given(st.text(any_char, max_size=300))
def test_random_text(raw: str) -> None:
    parse_text_safely(raw)


@FUZZ
@given(json_values, st.booleans())
def test_random_json_values(value: Any, ascii_only: bool) -> None:
    parse_text_safely(json.dumps(value, ensure_ascii=ascii_only))


@FUZZ
@given(messages, st.booleans())
def test_objects_with_a_type(message: dict[str, Any], ascii_only: bool) -> None:
    raw = json.dumps(message, ensure_ascii=ascii_only)
    parsed = parse_text_safely(raw)
    if parsed is not None:  # nothing outside the message's own fields got through
        assert message["type"] in TYPES
        assert set(message) <= protocol.FIELDS[message["type"]]


@FUZZ
@given(messages, st.integers(min_value=0), st.text(any_char, max_size=3))
def test_mangled_json(message: dict[str, Any], cut: int, junk: str) -> None:
    raw = json.dumps(message)
    cut %= len(raw) + 1
    parse_text_safely(raw[:cut] + junk + raw[cut:])
    parse_text_safely(raw[:cut])


@FUZZ
@given(
    st.integers(min_value=1, max_value=400),
    st.sampled_from(["[", "{", '{"a":', "[[", '"', "\\"]),
    st.sampled_from(["", "]", "}", '"']),
)
def test_deep_and_odd_nesting(depth: int, opener: str, closer: str) -> None:
    parse_text_safely(opener * depth + closer * depth)
    parse_text_safely('{"type":"text","text":' + opener * depth + closer * depth + "}")


@FUZZ
@given(st.integers(min_value=1, max_value=1000), st.sampled_from(["[", "[["]))
def test_nesting_gets_a_fixed_code_whatever_the_stack(depth: int, opener: str) -> None:
    arrays = opener * depth + "]" * (depth * len(opener))
    containers = depth * len(opener)
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(arrays, LIMITS)
    too_many = containers > protocol.MAX_JSON_CONTAINERS
    assert info.value.code == (ErrorCode.BAD_JSON if too_many else ErrorCode.BAD_MESSAGE)
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text('{"type":"text","text":' + arrays + "}", LIMITS)
    too_many = containers + 1 > protocol.MAX_JSON_CONTAINERS
    assert info.value.code == (ErrorCode.BAD_JSON if too_many else ErrorCode.INVALID_FIELD)


@FUZZ
@given(st.integers(min_value=1, max_value=50_000), st.sampled_from(["", "-", "0.", "1e"]))
def test_numbers_of_any_length_are_a_wrong_type_not_a_crash(digits: int, head: str) -> None:
    roomy = protocol.Limits(
        max_message_bytes=100_000, max_text_chars=200, voices=("Puck",), default_voice="Puck"
    )
    number = head + "7" * digits
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text('{"type":"text","text":' + number + "}", roomy)
    assert info.value.code == ErrorCode.INVALID_FIELD
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text('{"type":' + number + "}", roomy)
    assert info.value.code == ErrorCode.BAD_MESSAGE


# Messages that mostly keep to their own fields, so the field checks themselves are reached.
typed_messages = (
    st.fixed_dictionaries({"type": st.just("text"), "text": any_text | field_values})
    | st.fixed_dictionaries(
        {"type": st.just("start")}, optional={"mode": field_values, "voice": field_values}
    )
    | st.fixed_dictionaries({"type": st.just("stop")}, optional={"": json_values})
)


@FUZZ
@given(typed_messages, st.booleans())
def test_messages_of_each_type(message: dict[str, Any], ascii_only: bool) -> None:
    parsed = parse_text_safely(json.dumps(message, ensure_ascii=ascii_only))
    text = message.get("text")
    if message["type"] == "text" and isinstance(text, str):
        refused = (
            any(0xD800 <= ord(c) <= 0xDFFF for c in text)
            or any(c not in ALLOWED_CONTROLS and unicodedata.category(c) == "Cc" for c in text)
            or not text.strip()
            or len(text.strip()) > LIMITS.max_text_chars
        )
        assert (parsed is None) == refused


valid_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from(["\n", "\t"]),
    min_size=1,
    max_size=LIMITS.max_text_chars,
).filter(lambda text: bool(text.strip()))


@FUZZ
@given(valid_text, st.booleans())
def test_well_formed_texts_are_accepted(text: str, ascii_only: bool) -> None:
    raw = json.dumps({"type": "text", "text": text}, ensure_ascii=ascii_only)
    assert protocol.parse_text(raw, LIMITS) == protocol.TypedText(text.strip())


@FUZZ
@given(
    st.sampled_from([{}, {"mode": "audio"}, {"mode": "text"}]),
    st.sampled_from([{}, {"voice": "Puck"}, {"voice": "Kore"}]),
)
def test_well_formed_starts_are_accepted(mode: dict[str, str], voice: dict[str, str]) -> None:
    raw = json.dumps({"type": "start", **mode, **voice})
    expected = protocol.Start(
        modality=protocol.MODES[mode.get("mode", "audio")],
        voice=voice.get("voice", LIMITS.default_voice),
    )
    assert protocol.parse_text(raw, LIMITS) == expected
