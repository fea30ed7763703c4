"""The synthetic model of one stand-in connection: which reply each input gets, and playing it.

An utterance is answered ``I heard N s of audio. So far...``, a user text
``You said: "...". So far...``; a text holding ``Behaviour.refuse_trigger`` gets only a
turnComplete with ``turnCompleteReason: PROHIBITED_INPUT_CONTENT``, one holding
``Behaviour.note_trigger`` a ``save_note`` call (:mod:`standin.tools`). The benchmark's
stamped speech (:mod:`standin.bench_speech`) starts with the first stamped input.
"""

from __future__ import annotations

import asyncio
from functools import partial

from standin import probe
from standin.bench_speech import stream_bench_speech
from standin.protocol import content, fragments
from standin.state import SessionState
from standin.tools import BLOCKING, NOTE_FUNCTION, ToolDesk, calling_reply, holds_trigger, note_args
from standin.turns import PROHIBITED_INPUT, Turn, reply_steps

TRANSCRIPTION_FRAGMENTS = 3  # the user's words come in this many pieces


class SyntheticModel:
    """Chooses and plays the replies of one connection (it plays the speaker's turns)."""

    def __init__(self, state: SessionState, tools: ToolDesk) -> None:
        self._state, self._tools = state, tools
        self._bench_stream: asyncio.Task[None] | None = None
        self._bench_stop = asyncio.Event()
        state.speaker.play = self.play
        state.listener.on_utterance = self.answer_utterance

    def answer_utterance(self, heard: float, frequency: float | None) -> None:
        """Queue the reply to an utterance, with its (late, split) input transcription."""
        state = self._state
        pitch = f" at about {frequency:.0f} Hz" if frequency else ""
        said = f"(heard {heard:.1f} s of audio{pitch})"
        transcribe = state.config is not None and state.config.transcribe_input
        pieces = fragments(said, TRANSCRIPTION_FRAGMENTS) if transcribe else []
        heard_messages = [content(inputTranscription={"text": piece}) for piece in pieces]
        early = 1 if state.behaviour.late_input_transcription else len(heard_messages)
        reply = f"I heard {heard:.1f} s of audio. {state.listener.summary()}"
        turn = Turn(reply, "AUDIO", prelude=[*heard_messages[:early]], late=heard_messages[early:])
        state.speaker.queue.put(turn)
        state.host.notify()

    def answer_text(self, text: str) -> None:
        """Queue the reply to a user text: refused, a save_note call, or an answer."""
        state = self._state
        if text.strip() == probe.END_TEXT:
            state.speaker.spawn(self._end_bench())
            return
        behaviour, queue, config = state.behaviour, state.speaker.queue, state.config
        if holds_trigger(text, behaviour.refuse_trigger):
            queue.put(Turn("", "TEXT", refused=True))
            return
        note = note_args(text, behaviour.note_trigger)
        if note is not None:
            blocking = config is None or config.behaviour_of(NOTE_FUNCTION) == BLOCKING
            reply = "" if blocking else calling_reply(NOTE_FUNCTION)
            call = {"name": NOTE_FUNCTION, "args": note}
            queue.put(Turn(reply, "TEXT", tool_call=call, blocking=blocking))
            return
        queue.put(Turn(f'You said: "{text}". {state.listener.summary()}', "TEXT"))

    async def play(self, turn: Turn) -> None:
        """Send one turn step by step, stopping as soon as it is cancelled."""
        state = self._state
        behaviour, speaker = state.behaviour, state.speaker
        state.open_turn(turn)
        if not await speaker.emit(turn, turn.prelude):
            return
        await speaker.pause(turn, behaviour.reply_delay_s)
        if turn.refused:
            await speaker.emit(turn, partial(state.final, turn, PROHIBITED_INPUT), finish=True)
            return
        if turn.tool_call is not None:  # a blocking call: the reply waits for the response
            call = partial(self._tools.calling, turn.tool_call["name"], turn.tool_call["args"])
            if not await speaker.emit(turn, call) or turn.blocking:
                return
        config = state.config
        assert config is not None  # noqa: S101 - turns play only after an accepted setup
        for step in reply_steps(turn, behaviour, config.profile, config.transcribe_output):
            if not await speaker.emit(turn, step):
                return
            await speaker.pause(turn, behaviour.chunk_interval_s)
        await speaker.emit(turn, partial(state.final, turn), finish=True)

    def start_bench(self, tag: int) -> None:
        """A stamped input arrived: start the benchmark's speech if it is wanted and not on."""
        if self._bench_stream is None and self._state.behaviour.bench_talk_s > 0:
            self._bench_stream = asyncio.create_task(
                stream_bench_speech(self._state, tag, self._bench_stop),
                name=f"standin-bench-{self._state.record.index}",
            )

    def stop_bench(self) -> None:
        """The benchmark speech finishes the burst it is speaking, then stops."""
        self._bench_stop.set()

    async def stop(self) -> None:
        """Cancel the benchmark speech, if any."""
        if self._bench_stream is not None:
            self._bench_stream.cancel()
            await asyncio.wait({self._bench_stream})

    async def _end_bench(self) -> None:
        """Stop the benchmark speech, then say ``bench-end``: nothing stamped comes after it."""
        self._bench_stop.set()
        if self._bench_stream is not None:
            await asyncio.wait({self._bench_stream})
        self._state.speaker.queue.put(Turn(probe.END_REPLY, "TEXT"))
