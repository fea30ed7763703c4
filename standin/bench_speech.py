"""The benchmark's model speech: stamped silence streamed in real time (:mod:`standin.probe`).

Once a connection's first stamped input arrives and ``Behaviour.bench_talk_s`` > 0, the
model speaks bursts of that length, ``bench_silence_s`` apart, each with output
transcription and ending in turnComplete, until ``stop`` is set (the text ``bench:end``
or a goAway); the burst playing is finished first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from websockets.exceptions import ConnectionClosed

from standin import media, probe
from standin.protocol import OUTPUT_MIME, OUTPUT_RATE, content
from standin.state import SessionState
from standin.turns import Turn


async def stream_bench_speech(state: SessionState, tag: int, stop: asyncio.Event) -> None:
    """Speak stamped silence in real time, in bursts that end with turnComplete."""
    behaviour, speaker = state.behaviour, state.speaker
    chunk_s = behaviour.audio_chunk_s
    silence = bytes(max(probe.STAMP.size, 2 * round(chunk_s * OUTPUT_RATE)))
    per_burst = max(1, round(behaviour.bench_talk_s / chunk_s))
    loop = asyncio.get_running_loop()
    sent = state.host.probe.sent_down
    seq, due = 0, loop.time()
    if behaviour.bench_phase:  # each its own phase: no turn ends with everyone else's
        period = behaviour.bench_talk_s + behaviour.bench_silence_s
        due += random.Random(tag).random() * period  # noqa: S311 - a phase, not a secret
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
    with contextlib.suppress(ConnectionClosed):
        while not stop.is_set():
            burst = Turn("", "AUDIO")  # billed as a turn: the context, then its audio
            state.open_turn(burst)
            for _ in range(per_burst):
                pcm = probe.stamp_pcm(silence, tag, seq)
                data = {"mimeType": OUTPUT_MIME, "data": media.b64encode(pcm)}
                parts = {"parts": [{"inlineData": data}]}
                message = content(modelTurn=parts, outputTranscription={"text": "la "})
                await speaker.send(message)
                burst.delivered(message)
                sent[tag] += 1
                seq += 1
                due += chunk_s
                await asyncio.sleep(max(0.0, due - loop.time()))
            async with speaker.lock:
                for ending in state.final(burst):
                    await speaker.send_unlocked(ending)
            due += behaviour.bench_silence_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
