"""The stand-in's hostile traffic helpers do what the fuzzer relies on."""

import base64
import json

import pytest

from standin import hostile
from standin.media import b64decode_any


def test_paths_reach_every_object_and_array_and_set_and_drop_copy() -> None:
    message = hostile.pcm_audio(b"\x01\x02")
    found = hostile.paths(message)
    assert found == [
        ("serverContent",),
        ("serverContent", "modelTurn"),
        ("serverContent", "modelTurn", "parts"),
        ("serverContent", "modelTurn", "parts", 0),
        ("serverContent", "modelTurn", "parts", 0, "inlineData"),
        ("serverContent", "modelTurn", "parts", 0, "inlineData", "mimeType"),
        ("serverContent", "modelTurn", "parts", 0, "inlineData", "data"),
    ]
    retyped = hostile.set_at(message, found[2], "not a list")
    assert retyped["serverContent"]["modelTurn"]["parts"] == "not a list"
    dropped = hostile.drop_at(message, found[-1])
    assert dropped["serverContent"]["modelTurn"]["parts"][0]["inlineData"] == {
        "mimeType": "audio/pcm;rate=24000"
    }
    assert message == hostile.pcm_audio(b"\x01\x02")  # the original is untouched


@pytest.mark.parametrize("pcm", [b"", b"\x01\x02", b"\x01\x02\x03\x04"])
def test_base64_corruptions(pcm: bytes) -> None:
    data = base64.b64encode(pcm).decode()
    odd = hostile.corrupt_base64(data, "odd_bytes")
    assert len(b64decode_any(odd)) % 2 == 1
    with pytest.raises(ValueError, match=r"."):
        b64decode_any(hostile.corrupt_base64(data, "bad_chars"))
    over = hostile.corrupt_base64(data, "one_char_over")
    assert len(over.rstrip("=")) % 4 == 1  # a length no padding can fix
    assert b64decode_any(hostile.corrupt_base64(data, "url_safe")) == pcm
    assert hostile.corrupt_base64(data, "not_text") == len(data)


def test_huge_strings_and_deep_nesting() -> None:
    assert len(hostile.inflate("ab", 1001)) == 1001
    assert hostile.inflate("", 3) == "xxx"
    frame = hostile.deep_nesting(3)
    assert json.loads(frame) == {"serverContent": [[[]]]}
    with pytest.raises(RecursionError):
        json.loads(hostile.deep_nesting(100_000))
