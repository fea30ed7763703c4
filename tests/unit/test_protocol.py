"""The browser protocol parser: each message kind and each error code."""

import json

import pytest

from sessions_app import protocol
from sessions_app.protocol import ErrorCode, Kind, ProtocolError

LIMITS = protocol.Limits(
    max_message_bytes=4000, max_text_chars=50, voices=("Puck", "Kore"), default_voice="Puck"
)
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 20


def text(**message: object) -> protocol.ClientMessage:
    return protocol.parse_text(json.dumps(message), LIMITS)


def test_start_defaults_and_choices() -> None:
    assert text(type="start") == protocol.Start(modality="AUDIO", voice="Puck")
    assert text(type="start", mode="text", voice="Kore") == protocol.Start("TEXT", "Kore")


def test_typed_text_is_stripped() -> None:
    assert text(type="text", text="  hi there \n") == protocol.TypedText("hi there")


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


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.BAD_MESSAGE),
        ('"start"', ErrorCode.BAD_MESSAGE),
        ('{"kind": "start"}', ErrorCode.BAD_MESSAGE),
        ('{"type": 7}', ErrorCode.BAD_MESSAGE),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "start", "mode": "video"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": "Robot"}', ErrorCode.INVALID_FIELD),
        ('{"type": "start", "voice": ["Puck"]}', ErrorCode.INVALID_FIELD),
        ('{"type": "text"}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": 5}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "   "}', ErrorCode.INVALID_FIELD),
        ('{"type": "text", "text": "bell\\u0007"}', ErrorCode.INVALID_FIELD),
        (json.dumps({"type": "text", "text": "x" * 51}), ErrorCode.TOO_LARGE),
        (json.dumps({"type": "text", "text": "x" * 2000}), ErrorCode.TOO_LARGE),
        ("[" * 5000 + "]" * 5000, ErrorCode.TOO_LARGE),
        ("[" * 900 + "]" * 90, ErrorCode.BAD_JSON),
    ],
)
def test_text_errors(raw: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(raw, LIMITS)
    assert info.value.code == code
    assert info.value.message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ErrorCode.EMPTY_FRAME),
        (bytes([Kind.AUDIO]), ErrorCode.EMPTY_FRAME),
        (bytes([Kind.AUDIO]) + b"\0" * 3, ErrorCode.BAD_AUDIO),
        (bytes([Kind.JPEG]) + PNG, ErrorCode.BAD_IMAGE),
        (bytes([Kind.PNG]) + JPEG, ErrorCode.BAD_IMAGE),
        (b"\x09" + JPEG, ErrorCode.UNKNOWN_KIND),
        (bytes([Kind.JPEG]) + JPEG + b"\0" * 4000, ErrorCode.TOO_LARGE),
    ],
)
def test_binary_errors(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_binary(raw, LIMITS)
    assert info.value.code == code


def test_encoders() -> None:
    assert json.loads(protocol.encode("usage", total_tokens=3)) == {
        "type": "usage",
        "total_tokens": 3,
    }
    assert json.loads(protocol.encode_error(ErrorCode.TOO_LARGE, "big")) == {
        "type": "error",
        "code": "too_large",
        "message": "big",
    }
    assert protocol.encode_audio(b"\x01\x02") == b"\x01\x01\x02"
