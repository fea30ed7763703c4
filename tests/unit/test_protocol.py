"""The browser protocol parser: each message kind and each error code."""

import io
import json

import pytest
from PIL import Image

from sessions_app import outbound, protocol
from sessions_app.protocol import ErrorCode, Kind, ProtocolError

LIMITS = protocol.Limits(
    max_message_bytes=4000, max_text_chars=50, voices=("Puck", "Kore"), default_voice="Puck"
)


def image(format_: str) -> bytes:
    """A small real image, as a browser's canvas.toBlob would send it."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (40, 120, 200)).save(buffer, format_)
    return buffer.getvalue()


JPEG = image("JPEG")
PNG = image("PNG")


def text(**message: object) -> protocol.ClientMessage:
    """Parse ``message`` sent as JSON."""
    return protocol.parse_text(json.dumps(message), LIMITS)


def test_start_defaults_and_choices() -> None:
    assert text(type="start") == protocol.Start(modality="AUDIO", voice="Puck")
    assert text(type="start", mode="text", voice="Kore") == protocol.Start("TEXT", "Kore")


def test_typed_text_is_stripped_and_keeps_newlines_and_tabs() -> None:
    assert text(type="text", text="  hi there \n") == protocol.TypedText("hi there")
    assert text(type="text", text="a\n\tb") == protocol.TypedText("a\n\tb")
    assert text(type="text", text="naïve 😀 日本") == protocol.TypedText("naïve 😀 日本")
    # A surrogate pair written as JSON escapes is one valid character.
    assert protocol.parse_text(r'{"type":"text","text":"\ud83d\ude00"}', LIMITS) == (
        protocol.TypedText("😀")
    )


def test_stop() -> None:
    assert text(type="stop") == protocol.Stop()


def test_binary_kinds() -> None:
    pcm = b"\x01\x00" * 1600
    audio = protocol.parse_binary(bytes([Kind.AUDIO]) + pcm, LIMITS)
    assert audio == protocol.AudioChunk(pcm)
    assert audio.seconds == pytest.approx(0.1)
    assert protocol.parse_binary(bytes([Kind.JPEG]) + JPEG, LIMITS) == protocol.Frame(
        JPEG, "image/jpeg"
    )
    assert protocol.parse_binary(bytes([Kind.PNG]) + PNG, LIMITS) == protocol.Frame(
        PNG, "image/png"
    )
    assert protocol.parse_binary(bytearray([Kind.AUDIO, 0, 0]), LIMITS) == protocol.AudioChunk(
        b"\0\0"
    )


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", ErrorCode.BAD_JSON),
        ("{", ErrorCode.BAD_JSON),
        ("\ufeff{}", ErrorCode.BAD_JSON),
        ('{"type": "text", "text": NaN}', ErrorCode.BAD_JSON),
        ('{"type": "text", "text": -Infinity}', ErrorCode.BAD_JSON),
        ('{"type": "text", "text": "a\u0001b"}', ErrorCode.BAD_JSON),  # raw control in a string
        ('{"type": "text", "text": "\ud800"}', ErrorCode.INVALID_FIELD),  # raw lone surrogate
        ("[1, 2]", ErrorCode.BAD_MESSAGE),
        ('"start"', ErrorCode.BAD_MESSAGE),
        ("null", ErrorCode.BAD_MESSAGE),
        ("1" * 3000, ErrorCode.BAD_MESSAGE),  # over Python's int digit limit: never converted
        ("1e999999", ErrorCode.BAD_MESSAGE),
        ('{"kind": "start"}', ErrorCode.BAD_MESSAGE),
        ('{"type": 7}', ErrorCode.BAD_MESSAGE),
        ('{"type": null}', ErrorCode.BAD_MESSAGE),
        ('{"type": ["start"]}', ErrorCode.BAD_MESSAGE),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "Start"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": ""}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "start", "mode": "video"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "mode": ["audio"]}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "mode": {"a": 1}}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "mode": null}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "mode": "AUDIO"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": "Robot"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": ["Puck"]}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": "puck"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": "Puck\\u0000"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": 1}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": true}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "model": "gemini-ultra"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "mode": "audio", "mode": "text"}', ErrorCode.INVALID_FIELD),
        ('{"type": "stop", "reason": "bye"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": 5}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": 1' + "0" * 5000 + "}", ErrorCode.TOO_LARGE),
        ('{"type": "text", "text": 1' + "0" * 3000 + "}", ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": null}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": ["hi"]}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "   "}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": ""}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "bell\\u0007"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "nul\\u0000"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "cr\\r\\nlf"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "esc\\u001b[31m"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "del\\u007f"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "c1\\u0085"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "trailing\\u001f"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "lone \\ud800 high"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "lone \\udfff low"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "hi", "lang": "en"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "hi", "text": "ho"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "hi", "x": {"y": [1, 2]}}', ErrorCode.INVALID_FIELD),
        (json.dumps({"type": "text", "text": "x" * 51}), ErrorCode.TOO_LARGE),
        (json.dumps({"type": "text", "text": "x" * 2000}), ErrorCode.TOO_LARGE),
        (json.dumps({"type": "text", "text": "😀" * 1001}), ErrorCode.TOO_LARGE),  # bytes count
        ("[" * 5000 + "]" * 5000, ErrorCode.TOO_LARGE),
        ("[" * 900 + "]" * 90, ErrorCode.BAD_JSON),
        ("[" * 17 + "]" * 17, ErrorCode.BAD_JSON),
        ('{"type": "text", "text": ' + "[" * 20 + "]" * 20 + "}", ErrorCode.BAD_JSON),
        ('{"type": "text", "text": [[[["deep"]]]]}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "' + "[{" * 100 + '"}', ErrorCode.TOO_LARGE),
    ],
)
def test_text_errors(raw: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(raw, LIMITS)
    assert info.value.code == code
    assert info.value.message


def test_brackets_inside_strings_are_text_not_structure() -> None:
    assert text(type="text", text="[{" * 20) == protocol.TypedText("[{" * 20)
    assert text(type="text", text='"[' * 10 + "\\" * 5) == protocol.TypedText('"[' * 10 + "\\" * 5)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"type": "stop", "reason": "bye"}', '"reason"'),
        ('{"type": "start", "mode": "audio", "model": "x", "tools": []}', '"model", "tools"'),
        ('{"type": "text", "text": "hi", "\\u0007": 1}', '"\\u0007"'),
        ('{"type": "text", "text": "hi", "text": "ho"}', '"text" appears more than once'),
    ],
)
def test_field_errors_name_the_field(raw: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(raw, LIMITS)
    assert info.value.code == ErrorCode.INVALID_FIELD
    assert field in info.value.message


def test_error_messages_never_echo_control_characters_or_surrogates() -> None:
    for raw in ('{"type": "\\u0000\\u001b\\ud800x"}', '{"type": "stop", "\\ud800": 1}'):
        with pytest.raises(ProtocolError) as info:
            protocol.parse_text(raw, LIMITS)
        assert info.value.message.isascii()
        assert info.value.message.isprintable()


def test_parsers_refuse_the_wrong_python_types() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_binary("\x01\x00\x00", LIMITS)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.BAD_MESSAGE
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(None, LIMITS)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.BAD_MESSAGE
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(b'{"type": "stop"}\xff', LIMITS)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.BAD_JSON


TRUNCATED_PNG = PNG[:-12]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ErrorCode.EMPTY_FRAME),
        (bytes([Kind.AUDIO]), ErrorCode.EMPTY_FRAME),
        (bytes([Kind.JPEG]), ErrorCode.EMPTY_FRAME),
        (bytes([Kind.PNG]), ErrorCode.EMPTY_FRAME),
        (b"\x09", ErrorCode.UNKNOWN_KIND),
        (bytes([Kind.AUDIO]) + b"\0" * 3, ErrorCode.BAD_AUDIO),
        (bytes([Kind.AUDIO]) + b"\0", ErrorCode.BAD_AUDIO),
        (bytes([Kind.JPEG]) + PNG, ErrorCode.BAD_IMAGE),
        (bytes([Kind.PNG]) + JPEG, ErrorCode.BAD_IMAGE),
        (bytes([Kind.JPEG]) + JPEG[:-2], ErrorCode.BAD_IMAGE),  # truncated: no EOI
        (bytes([Kind.JPEG]) + JPEG[: len(JPEG) // 2], ErrorCode.BAD_IMAGE),
        (bytes([Kind.JPEG]) + b"\xff\xd8\xff\xd9", ErrorCode.BAD_IMAGE),  # SOI, EOI, nothing
        (bytes([Kind.JPEG]) + b"\xff\xd8\xff", ErrorCode.BAD_IMAGE),
        (bytes([Kind.JPEG]) + b"\xff\xd8\xff\x00\xff\xd9", ErrorCode.BAD_IMAGE),
        (bytes([Kind.JPEG]) + b"GIF89a" + JPEG, ErrorCode.BAD_IMAGE),
        (bytes([Kind.PNG]) + TRUNCATED_PNG, ErrorCode.BAD_IMAGE),
        (bytes([Kind.PNG]) + protocol.PNG_MAGIC + b"\0" * 40, ErrorCode.BAD_IMAGE),  # no IHDR
        (bytes([Kind.PNG]) + protocol.PNG_MAGIC, ErrorCode.BAD_IMAGE),
        (b"\x00" + JPEG, ErrorCode.UNKNOWN_KIND),
        (b"\x04" + PNG, ErrorCode.UNKNOWN_KIND),
        (b"\xff" + JPEG, ErrorCode.UNKNOWN_KIND),
        (b"{" + b'"type":"stop"}', ErrorCode.UNKNOWN_KIND),  # JSON sent as a binary frame
        (bytes([Kind.JPEG]) + JPEG + b"\0" * 4000, ErrorCode.TOO_LARGE),
        (b"\x09" * 4001, ErrorCode.TOO_LARGE),
    ],
)
def test_binary_errors(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_binary(raw, LIMITS)
    assert info.value.code == code
    assert info.value.message


def test_mislabelled_images_are_named() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_binary(bytes([Kind.JPEG]) + PNG, LIMITS)
    assert "a PNG image" in info.value.message
    with pytest.raises(ProtocolError) as info:
        protocol.parse_binary(bytes([Kind.JPEG]) + JPEG[:-2], LIMITS)
    assert "truncated" in info.value.message


def test_encoders() -> None:
    usage = outbound.Usage(
        prompt_tokens=1, response_tokens=2, total_tokens=3, thoughts_tokens=0,
        tool_use_prompt_tokens=0,
    )  # fmt: skip
    assert json.loads(outbound.encode(usage)) == {
        "type": "usage",
        "prompt_tokens": 1,
        "response_tokens": 2,
        "total_tokens": 3,
        "thoughts_tokens": 0,
        "tool_use_prompt_tokens": 0,
        "prompt_tokens_by_modality": {},
        "response_tokens_by_modality": {},
        "tool_use_prompt_tokens_by_modality": {},
    }
    assert json.loads(outbound.encode(outbound.error(ErrorCode.TOO_LARGE, "big"))) == {
        "type": "error",
        "code": "too_large",
        "message": "big",
    }
    status = outbound.Status(state="ended", session_id="s", reason="client_stop")
    assert outbound.encode(status) == (
        '{"type":"status","state":"ended","session_id":"s","reason":"client_stop"}'
    )  # unset fields are left out, the type comes first
    assert outbound.encode_audio(b"\x01\x02") == b"\x01\x01\x02"
