"""Latency stamps: payloads that carry their own sequence number and send time.

The benchmark's load generator stamps every audio chunk, screen frame and typed text it
sends; the stand-in finds the stamp when the payload arrives and records the one-way
latency. In the other direction, a stand-in whose ``Behaviour.bench_talk_s`` is set
streams stamped model speech that the generator times on arrival. Both ends read
``time.monotonic_ns()``: on Linux that is CLOCK_MONOTONIC, one clock for every process
on the machine.

A stamp is 20 bytes: ``MAGIC``, the session's tag, the payload's sequence number and
the send time in ns (little-endian). In PCM it replaces the first ten samples; in a
JPEG it sits in a comment (COM) segment right after the start-of-image marker, so the
file stays a valid JPEG; in text it is ``[bench TAG:SEQ:NS]``.
"""

from __future__ import annotations

import re
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field

MAGIC = b"\xa5BNC"
STAMP = struct.Struct("<4sIIQ")
SEARCH_BYTES = 64  # a stamp starts this close to the payload's start
TEXT_STAMP = re.compile(r"\[bench (\d+):(\d+):(\d+)\]")
END_TEXT = "bench:end"  # the generator's last message: stop streaming, then say END_REPLY
END_REPLY = "bench-end"
KINDS = ("audio", "frame", "text")


def now_ns() -> int:
    """The clock both ends of a measurement read."""
    return time.monotonic_ns()


def stamp(tag: int, seq: int, sent_ns: int | None = None) -> bytes:
    """The 20 stamp bytes."""
    return STAMP.pack(MAGIC, tag, seq, now_ns() if sent_ns is None else sent_ns)


def stamp_pcm(pcm: bytes, tag: int, seq: int) -> bytes:
    """``pcm`` with its first samples replaced by a stamp (same length)."""
    return stamp(tag, seq) + pcm[STAMP.size :]


def stamp_jpeg(jpeg: bytes, tag: int, seq: int) -> bytes:
    """``jpeg`` with a COM segment holding a stamp after its SOI marker."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("Not a JPEG.")
    segment = b"\xff\xfe" + struct.pack(">H", STAMP.size + 2) + stamp(tag, seq)
    return jpeg[:2] + segment + jpeg[2:]


def stamp_text(text: str, tag: int, seq: int) -> str:
    """``text`` with a stamp at its end."""
    return f"{text} [bench {tag}:{seq}:{now_ns()}]"


def read_stamp(data: bytes) -> tuple[int, int, int] | None:
    """(tag, seq, sent_ns) of a stamped payload, or None."""
    at = data.find(MAGIC, 0, SEARCH_BYTES)
    if at < 0 or len(data) < at + STAMP.size:
        return None
    _, tag, seq, sent_ns = STAMP.unpack_from(data, at)
    return tag, seq, sent_ns


def read_text_stamp(text: str) -> tuple[int, int, int] | None:
    """(tag, seq, sent_ns) of a stamped text, or None."""
    found = TEXT_STAMP.search(text)
    if found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3])


@dataclass
class Arrival:
    """One stamped payload as the stand-in received it."""

    kind: str
    tag: int
    seq: int
    latency_ns: int
    connection: int
    at_ns: int


@dataclass
class Probe:
    """What the stand-in measured: stamped arrivals, and the stamped speech it sent."""

    arrivals: list[Arrival] = field(default_factory=list)
    sent_down: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    go_aways: list[tuple[int, int]] = field(default_factory=list)  # (connection, at_ns)
    tags: dict[int, int] = field(default_factory=dict)  # connection -> tag

    def arrived(self, kind: str, found: tuple[int, int, int] | None, connection: int) -> None:
        """Record a payload whose stamp is ``found`` (nothing if unstamped)."""
        if found is None:
            return
        tag, seq, sent_ns = found
        at = now_ns()
        self.arrivals.append(Arrival(kind, tag, seq, at - sent_ns, connection, at))
        self.tags.setdefault(connection, tag)

    def reset(self) -> None:
        """Forget everything measured so far."""
        self.arrivals.clear()
        self.sent_down.clear()
        self.go_aways.clear()
        self.tags.clear()
