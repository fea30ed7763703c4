"""SpeechOutbox: the window of unacknowledged speech, the bound, drop-oldest, interrupts, acks."""

import json

import pytest

from sessions_app import protocol
from sessions_app.protocol import ErrorCode, ProtocolError
from sessions_app.session.outbox import OUTPUT_BYTES_PER_SECOND, OutboxLimits, SpeechOutbox

CHUNK = 4800  # 0.1 s of 24 kHz PCM16
LIMITS = protocol.Limits(
    max_message_bytes=65536, max_text_chars=100, voices=("Puck",), default_voice="Puck"
)


def chunk(index: int) -> bytes:
    """0.1 s of speech whose first two bytes tell which chunk it is."""
    return index.to_bytes(2, "big") + bytes(CHUNK - 2)


class Wire:
    """What the outbox sent, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, pcm: bytes) -> None:
        """Take one frame."""
        self.sent.append(pcm)

    def indexes(self) -> list[int]:
        """The chunk numbers sent."""
        return [int.from_bytes(pcm[:2], "big") for pcm in self.sent]


def outbox(window_s: float = 0.5, buffer_s: float = 1.0) -> tuple[SpeechOutbox, Wire]:
    """An outbox over a recording wire."""
    wire = Wire()
    return SpeechOutbox(send=wire.send, limits=OutboxLimits(window_s, buffer_s)), wire


async def test_no_more_than_the_window_goes_out_unacknowledged() -> None:
    box, wire = outbox(window_s=0.5)
    for index in range(8):
        await box.push(chunk(index))
    assert wire.indexes() == [0, 1, 2, 3, 4]
    assert box.in_flight_bytes == 5 * CHUNK
    assert box.queued_bytes == 3 * CHUNK


async def test_an_ack_lets_the_waiting_speech_go_in_order() -> None:
    box, wire = outbox(window_s=0.5)
    for index in range(8):
        await box.push(chunk(index))
    await box.ack(2)
    assert wire.indexes() == [0, 1, 2, 3, 4, 5, 6]
    await box.ack(7)
    assert wire.indexes() == list(range(8))
    assert (box.queued_bytes, box.in_flight_bytes, box.acked) == (0, CHUNK, 7)


async def test_a_full_outbox_drops_the_oldest_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, wire = outbox(window_s=0.2, buffer_s=0.5)
    for index in range(20):
        await box.push(chunk(index))
    assert wire.indexes() == [0, 1]
    assert box.queued_bytes == 5 * CHUNK == box.high_water_bytes
    assert box.dropped_chunks == 13
    assert box.dropped_s == pytest.approx(13 * CHUNK / OUTPUT_BYTES_PER_SECOND)
    await box.ack(2)
    await box.ack(4)
    assert wire.indexes() == [0, 1, 15, 16, 17, 18]  # the newest speech, in order
    warnings = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(warnings) == 1  # once when dropping starts, not per chunk


async def test_an_interrupt_drops_the_waiting_speech_uncounted() -> None:
    box, wire = outbox(window_s=0.2)
    for index in range(6):
        await box.push(chunk(index))
    assert box.clear() == 4 * CHUNK
    await box.ack(2)
    assert wire.indexes() == [0, 1]
    assert box.dropped_bytes == 0
    await box.push(chunk(9))  # the next reply goes out at once
    assert wire.indexes() == [0, 1, 9]


async def test_an_ack_beyond_the_frames_sent_is_refused_and_changes_nothing() -> None:
    box, wire = outbox(window_s=0.2)
    for index in range(4):
        await box.push(chunk(index))
    with pytest.raises(ProtocolError) as info:
        await box.ack(3)
    assert info.value.code == ErrorCode.INVALID_FIELD
    assert "3 audio frames, but 2 were sent" in info.value.message
    await box.ack(1)
    await box.ack(0)  # stale: lower than before
    assert (box.acked, wire.indexes()) == (1, [0, 1, 2])


async def test_a_closed_outbox_sends_nothing_more() -> None:
    box, wire = outbox(window_s=0.1)
    await box.push(chunk(0))
    await box.push(chunk(1))
    box.close()
    await box.ack(1)
    await box.push(chunk(2))
    assert wire.indexes() == [0]
    assert box.queued_bytes == 0


@pytest.mark.parametrize(
    "raw",
    ['{"type":"ack","audio":-1}', '{"type":"ack","audio":1.5}', '{"type":"ack","audio":1e3}',
     '{"type":"ack","audio":"4"}', '{"type":"ack","audio":null}', '{"type":"ack","audio":true}',
     '{"type":"ack","audio":007}', '{"type":"ack"}', '{"type":"ack","audio":1,"video":2}',
     '{"type":"ack","audio":' + "9" * 16 + "}", '{"type":"ack","audio":' + "9" * 5000 + "}"],
)  # fmt: skip
def test_bad_acks_are_invalid_fields(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_text(raw, LIMITS)
    assert info.value.code in (ErrorCode.INVALID_FIELD, ErrorCode.BAD_JSON)
    if "007" not in raw:  # a leading zero is not JSON at all
        assert info.value.code == ErrorCode.INVALID_FIELD
        assert '"audio"' in info.value.message or '"video"' in info.value.message


@pytest.mark.parametrize("count", [0, 1, 42, 10**15 - 1])
def test_good_acks_parse(count: int) -> None:
    parsed = protocol.parse_text(json.dumps({"type": "ack", "audio": count}), LIMITS)
    assert parsed == protocol.Ack(audio=count)
