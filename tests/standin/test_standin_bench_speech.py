"""The benchmark's model speech (standin/bench_speech.py): when each connection starts.

With ``bench_phase`` each connection's first burst waits for its own share of one
talk-and-silence period, taken from its tag, so that the turns of a level's sessions do
not all end in the same instant; without it every connection speaks at once.
"""

import asyncio
import random
from pathlib import Path

from google.genai import types

from standin import Behaviour, StandIn, probe
from tests.standin.sdk import PCM16K, connect

TALK_S = SILENCE_S = 1.0
PERIOD_S = TALK_S + SILENCE_S
LATE_TAG, EARLY_TAG = 2, 1  # their phases: 0.956 and 0.134 of the period


def phase_s(tag: int) -> float:
    """Where the stand-in starts ``tag``'s speech, after its first stamped input."""
    return random.Random(tag).random() * PERIOD_S


def bench(*, phase: bool) -> Behaviour:
    return Behaviour(
        analyse_audio=False, bench_talk_s=TALK_S, bench_silence_s=SILENCE_S, bench_phase=phase
    )


async def first_speech(standin: StandIn, tag: int, arrivals: list[int]) -> float:
    """Send one stamped chunk as ``tag``; seconds until the model's first speech."""
    async with connect(standin) as session:
        loop = asyncio.get_running_loop()
        pcm = probe.stamp_pcm(bytes(3200), tag, 0)
        await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type=PCM16K))
        sent = loop.time()
        async for message in session.receive():
            content = message.server_content
            if content is not None and content.model_turn is not None:
                arrivals.append(tag)
                return loop.time() - sent
    raise AssertionError("The model never spoke.")


async def test_each_connection_starts_speaking_at_its_own_phase(tmp_path: Path) -> None:
    assert phase_s(LATE_TAG) > 0.9 * PERIOD_S > 0.2 * PERIOD_S > phase_s(EARLY_TAG)
    arrivals: list[int] = []
    async with StandIn(behaviour=bench(phase=True), tls_dir=tmp_path / "tls") as standin:
        late = asyncio.create_task(first_speech(standin, LATE_TAG, arrivals))
        await asyncio.sleep(0.05)  # the late one's input goes first
        early = await first_speech(standin, EARLY_TAG, arrivals)
        waited = await late
    assert arrivals == [EARLY_TAG, LATE_TAG]
    assert waited >= phase_s(LATE_TAG) - 0.01
    assert early < waited


async def test_without_the_phase_every_connection_speaks_at_once(tmp_path: Path) -> None:
    arrivals: list[int] = []
    async with StandIn(behaviour=bench(phase=False), tls_dir=tmp_path / "tls") as standin:
        waited = await first_speech(standin, LATE_TAG, arrivals)
    assert arrivals == [LATE_TAG]
    assert waited < phase_s(LATE_TAG) / 2
