"""The stand-in's pure media helpers, checked against Pillow and numpy (test-only deps)."""

import base64
import struct

import numpy as np
import pytest

from standin import media
from tests.standin.sdk import image, pcm_tone


def sine(freq: float, seconds: float) -> bytes:
    """PCM16LE sine computed with numpy, independently of the code under test."""
    return pcm_tone(freq, seconds, amplitude=10000.0)


@pytest.mark.parametrize(
    ("size", "options"),
    [
        ((321, 123), {}),
        ((1, 1), {}),
        ((1920, 1080), {"progressive": True}),  # SOF2 instead of SOF0
        ((640, 360), {"exif": b"Exif\0\0" + b"\0" * 200, "quality": 30}),  # APP1 before SOF
    ],
)
def test_jpeg_dimensions_match_pillow(size: tuple[int, int], options: dict[str, object]) -> None:
    data = image(size, "JPEG", **options)
    assert media.jpeg_dimensions(data) == size
    assert media.image_dimensions(data) == size


def test_jpeg_with_fill_bytes_between_segments() -> None:
    data = image((200, 100), "JPEG")
    padded = data[:2] + b"\xff\xff\xff" + data[2:]
    assert media.jpeg_dimensions(padded) == (200, 100)


def test_truncated_or_bad_jpeg_gives_none_never_an_exception() -> None:
    data = image((300, 200), "JPEG")
    sof = data.index(b"\xff\xc0")
    for cut in range(len(data) + 1):
        expected = (300, 200) if cut >= sof + 9 else None
        assert media.jpeg_dimensions(data[:cut]) == expected, cut
    assert media.jpeg_dimensions(b"") is None
    assert media.jpeg_dimensions(b"\xff\xd8\xff\xd9") is None  # EOI before any frame
    assert media.jpeg_dimensions(b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20) is None  # SOS first
    assert media.jpeg_dimensions(b"\xff\xd8\x00\x11garbage") is None  # no marker
    assert media.jpeg_dimensions(b"\xff\xd8\xff\xe0\x00\x01") is None  # length < 2
    zero_height = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00" + b"\0" * 12
    assert media.jpeg_dimensions(zero_height) is None
    assert media.image_dimensions(b"not an image at all") is None


def test_png_dimensions_from_pillow_and_by_hand() -> None:
    assert media.png_dimensions(image((77, 33), "PNG")) == (77, 33)
    assert media.image_dimensions(image((5, 4000), "PNG", mode="RGBA")) == (5, 4000)
    handmade = media.PNG_SIGNATURE + struct.pack(">I4sII", 13, b"IHDR", 70000, 2)
    assert media.png_dimensions(handmade) == (70000, 2)
    assert media.png_dimensions(handmade[:23]) is None
    assert media.png_dimensions(media.PNG_SIGNATURE + b"\0\0\0\x0dIEND" + b"\0" * 8) is None


@pytest.mark.parametrize(
    ("mode", "options"),
    [("RGB", {"quality": 50}), ("RGB", {"lossless": True}), ("RGBA", {"quality": 50})],
)
def test_webp_dimensions(mode: str, options: dict[str, object]) -> None:
    data = image((413, 207), "WEBP", mode=mode, **options)
    assert media.image_dimensions(data) == (413, 207)
    assert media.image_dimensions(data[:20]) is None


def test_gif_dimensions() -> None:
    assert media.image_dimensions(image((48, 17), "GIF")) == (48, 17)


@pytest.mark.parametrize("length", [1, 2, 3, 256, 257, 258, 256 * 3])
def test_base64_both_alphabets_padded_or_not(length: int) -> None:
    raw = (bytes(range(256)) * 3)[:length]
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    for text in (standard, urlsafe, urlsafe.rstrip("="), standard.rstrip("=")):
        assert media.b64decode_any(text) == raw
        assert media.b64decode_any(text.encode()) == raw
    if length >= 256:
        assert {"-", "_"} <= set(urlsafe)
        assert {"+", "/"} <= set(standard)


def test_base64_rejects_garbage_instead_of_corrupting() -> None:
    for bad in ("abc*", "a", "ab$d", "é123"):
        with pytest.raises(ValueError):  # noqa: PT011 - binascii.Error or ValueError
            media.b64decode_any(bad)
    assert media.b64encode(bytes(range(256))) == base64.b64encode(bytes(range(256))).decode()


@pytest.mark.parametrize(
    ("mime", "rate"),
    [
        ("audio/pcm;rate=16000", 16000),
        ("audio/pcm; rate=24000", 24000),
        ("audio/pcm", 16000),
        ("audio/pcm;rate=0", 16000),
        ("", 16000),
        ("audio/L16;codec=pcm;RATE=8000", 8000),
    ],
)
def test_sample_rate_from_mime(mime: str, rate: int) -> None:
    assert media.sample_rate(mime) == rate


def test_pcm16_duration_and_rms() -> None:
    assert media.pcm16_duration(bytes(32000), 16000) == 1.0
    assert media.pcm16_duration(bytes(4801), 24000) == 0.1  # an odd byte is ignored
    assert media.pcm16_duration(b"", 16000) == 0.0
    assert media.pcm16_rms(b"") == 0.0
    assert media.pcm16_rms(struct.pack("<4h", 1000, -1000, 1000, -1000)) == 1000.0
    assert media.pcm16_rms(struct.pack("<2h", 3, 4)) == pytest.approx(12.5**0.5)
    assert media.pcm16_rms(sine(440, 1.0)) == pytest.approx(10000 / 2**0.5, rel=1e-3)


@pytest.mark.parametrize("freq", [80.0, 220.0, 440.0, 997.0, 3000.0, 6500.0])
def test_dominant_frequency_of_tones(freq: float) -> None:
    estimate = media.dominant_frequency(sine(freq, 0.8), 16000)
    assert estimate == pytest.approx(freq, rel=0.005)


def test_dominant_frequency_with_noise_and_a_burst_of_other_sound() -> None:
    rng = np.random.default_rng(7)
    clean = np.frombuffer(sine(440, 1.0), dtype="<i2").astype(float)
    noisy = (clean + rng.normal(0, 800, clean.size)).astype("<i2").tobytes()
    assert media.dominant_frequency(noisy, 16000) == pytest.approx(440, rel=0.02)
    with_burst = sine(440, 1.0) + bytes(range(256)) * 8  # a 125 Hz sawtooth
    assert media.dominant_frequency(with_burst, 16000) == pytest.approx(440, rel=0.02)


def test_dominant_frequency_of_silence_is_none() -> None:
    assert media.dominant_frequency(bytes(16000), 16000) is None
    assert media.dominant_frequency(b"\x01\x00", 16000) is None
    assert media.dominant_frequency(sine(440, 1.0), 0) is None


def test_tone_is_exact_length_frequency_and_level() -> None:
    pcm = media.tone_pcm16(660.0, 0.6, 24000, 0.3)
    assert len(pcm) == 0.6 * 24000 * 2
    samples = np.frombuffer(pcm, dtype="<i2")
    assert int(np.abs(samples).max()) == pytest.approx(0.3 * 32767, rel=0.01)
    assert abs(int(samples[0])) < 100  # faded in: no click
    assert abs(int(samples[-1])) < 100  # faded out
    assert media.dominant_frequency(pcm, 24000) == pytest.approx(660, rel=0.001)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(samples.size, 1 / 24000)[spectrum.argmax()] == pytest.approx(660, abs=2)
    assert media.tone_pcm16(440.0, 0.0) == b""
