"""Pure media helpers for the Gemini Live stand-in.

Standard library only: the offline demo runs the stand-in without numpy or Pillow.
PCM audio is signed 16-bit little-endian mono, as the Live API uses it.
"""

from __future__ import annotations

import base64
import math
import re
import statistics
import struct
import sys
from array import array
from collections.abc import Sequence
from functools import lru_cache

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7 and a stray SOI.
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA
_RATE_RE = re.compile(r"(?:^|;)\s*rate\s*=\s*(\d+)", re.IGNORECASE)
_FADE_S = 0.005

Size = tuple[int, int]


def b64decode_any(data: str | bytes) -> bytes:
    """Decode base64 in the standard or the URL-safe alphabet, padded or not.

    Raises ``ValueError`` (``binascii.Error``) on anything that is not base64.
    """
    text = data.decode("ascii") if isinstance(data, bytes) else data
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def b64encode(data: bytes) -> str:
    """Encode bytes as standard, padded base64 text (what the Live API sends)."""
    return base64.b64encode(data).decode("ascii")


def image_dimensions(data: bytes) -> Size | None:
    """(width, height) of a JPEG, PNG, GIF or WebP image, or None if not recognised."""
    if data.startswith(JPEG_SOI):
        return jpeg_dimensions(data)
    if data.startswith(PNG_SIGNATURE):
        return png_dimensions(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return _positive(*struct.unpack("<HH", data[6:10]))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return webp_dimensions(data)
    return None


def jpeg_dimensions(data: bytes) -> Size | None:
    """(width, height) from a JPEG's SOFn segment; None if absent, truncated or bad."""
    if not data.startswith(JPEG_SOI):
        return None
    end, pos = len(data), 2
    while pos < end:
        if data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (_JPEG_EOI, _JPEG_SOS) or pos + 2 > end:
            return None
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if length < 7 or pos + 7 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return _positive(width, height)
        pos += length
    return None


def png_dimensions(data: bytes) -> Size | None:
    """(width, height) from a PNG's IHDR chunk; None if absent or truncated."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return _positive(*struct.unpack(">II", data[16:24]))


def webp_dimensions(data: bytes) -> Size | None:
    """(width, height) of a lossy, lossless or extended WebP; None if truncated."""
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if kind == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        return (width, 1 + int.from_bytes(data[27:30], "little"))
    return None


def _positive(width: int, height: int) -> Size | None:
    """The size, or None when a dimension is zero (unknown)."""
    return (width, height) if width > 0 and height > 0 else None


def sample_rate(mime_type: str, default: int = 16000) -> int:
    """The ``rate=`` parameter of an ``audio/pcm`` MIME type, else ``default``."""
    match = _RATE_RE.search(mime_type or "")
    rate = int(match.group(1)) if match else 0
    return rate if rate > 0 else default


def pcm16_samples(data: bytes) -> array[int]:
    """The samples of PCM16LE bytes (a trailing odd byte is ignored)."""
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def pcm16_duration(data: bytes, rate: int) -> float:
    """Seconds of mono PCM16 audio in ``data`` at ``rate`` samples per second."""
    return (len(data) // 2) / rate if rate > 0 else 0.0


def pcm16_rms(data: bytes) -> float:
    """Root mean square amplitude of PCM16 audio (0.0 for no samples)."""
    samples = pcm16_samples(data)
    if not samples:
        return 0.0
    return math.sqrt(sum(value * value for value in samples) / len(samples))


def dominant_frequency(data: bytes, rate: int, window_s: float = 0.05) -> float | None:
    """Estimate the dominant frequency of PCM16 audio, in Hz.

    Each ``window_s`` window of audible level gets a zero-crossing estimate (crossing
    times interpolated between samples, with hysteresis against noise); the median
    of those wins, so clicks or a short burst of another sound do not skew it. A clean
    tone is measured to a fraction of a percent. None for silence or too few periods.
    """
    samples = pcm16_samples(data)
    size = max(3, round(window_s * rate)) if rate > 0 else 0
    if len(samples) < 3 or size == 0:
        return None
    mean = sum(samples) / len(samples)
    centred = [value - mean for value in samples]
    windows = [centred[start : start + size] for start in range(0, len(centred), size)]
    level = _rms(centred)
    estimates = [
        estimate
        for window in windows
        if level > 0 and _rms(window) >= 0.25 * level
        if (estimate := _crossing_frequency(window, rate)) is not None
    ]
    return statistics.median(estimates) if estimates else None


def _rms(values: Sequence[float]) -> float:
    """Root mean square of ``values``."""
    return math.sqrt(sum(value * value for value in values) / len(values)) if values else 0.0


def _crossing_frequency(values: Sequence[float], rate: int) -> float | None:
    """Frequency from the rising zero crossings of one window; None under two crossings."""
    threshold = 0.1 * _rms(values)
    crossings: list[float] = []
    armed = False
    for index in range(1, len(values)):
        before, after = values[index - 1], values[index]
        armed = armed or before < -threshold
        if armed and before < 0 <= after:
            crossings.append(index - 1 + before / (before - after))
            armed = False
    if len(crossings) < 2:
        return None
    return (len(crossings) - 1) * rate / (crossings[-1] - crossings[0])


@lru_cache(maxsize=32)
def tone_pcm16(
    frequency_hz: float, seconds: float, rate: int = 24000, amplitude: float = 0.3
) -> bytes:
    """A sine tone as PCM16LE mono, with 5 ms fades so chunk edges do not click."""
    count = max(0, round(seconds * rate))
    peak = max(0.0, min(amplitude, 1.0)) * 32767
    fade = max(1, round(_FADE_S * rate))
    step = 2 * math.pi * frequency_hz / rate
    samples = array("h", bytes(2 * count))
    for index in range(count):
        envelope = min(1.0, (index + 1) / fade, (count - index) / fade)
        samples[index] = round(peak * envelope * math.sin(step * index))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()
