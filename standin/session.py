"""The per-connection protocol handling and synthetic model of the Gemini Live stand-in.

A :class:`LiveConnectionHandler` receives one client's messages, records them in the
connection's :class:`Connection` and answers with deterministic, synthetic model turns:
an audio reply to each utterance (found by a simple energy voice-activity detector) and
a text reply to each user text. It reaches the server that accepted the connection only
through the narrow :class:`HandlerHost` protocol, which ``StandIn`` implements.

Tool calls: the model calls a function when a test says so (``StandIn.call_tool``) or
when a user text holds ``Behaviour.note_trigger`` (``save_note``), and answers each
response to its own calls with a short reply turn.

Faults are scriptable: refused setups (1008 for a bad resumption handle, 1011 when
connections are refused), ``goAway`` followed by a close, and a dropped TCP connection
(no close frame, so the client sees 1006), immediately or part-way through a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from standin import media, probe
from standin.records import Behaviour, Connection, ModelContext, camelize

logger = logging.getLogger(__name__)

NORMAL_CLOSURE = 1000
INVALID_ARGUMENT = 1007
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
INVALID_HANDLE_REASON = "Invalid session resumption handle."
UNAVAILABLE_REASON = "Service unavailable."
GO_AWAY_CLOSE_REASON = "Connection lifetime reached."
OUTPUT_RATE = 24000
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
WORDS_PER_TEXT_PART = 3
NOTE_TITLE_CHARS = 60  # a note's title when the user text gives none
PITCH_ANALYSIS_S = 2.0  # bounds the pure-Python pitch estimate's cost per utterance
_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


class HandlerHost(Protocol):
    probe: probe.Probe
    """What a connection handler needs from its server (``StandIn`` provides it)."""

    behaviour: Behaviour

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""

    def remember_handle(self, handle: str, context: ModelContext) -> None:
        """Keep ``context`` for a later setup resuming with ``handle``."""

    def lookup_handle(self, handle: str) -> ModelContext | None:
        """The context ``handle`` resumes, or None for an unknown handle."""

    def new_call_id(self) -> str:
        """A function call id not used before on this server."""

    def remember_tool_call(self, call_id: str, name: str) -> None:
        """A call the model made and awaits a response to (on any connection)."""

    def take_tool_call(self, call_id: str) -> str | None:
        """Forget a pending call and return its function name; None if it is not pending."""


class Refusal(Exception):
    """Why the connection is closed with ``code`` (and the message as reason)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class InvalidInput(Refusal):
    """A client message the real service would reject (closes with 1007)."""

    def __init__(self, reason: str) -> None:
        super().__init__(INVALID_ARGUMENT, reason)


@dataclass(eq=False)
class _Turn:
    """One model reply waiting in, or playing from, a connection's turn queue."""

    reply: str
    input_modality: str
    prelude: list[dict[str, Any]] = field(default_factory=list)
    tool_call: dict[str, Any] | None = None  # the turn only calls this function
    cancelled: bool = False
    sent: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Utterance:
    """User speech collected until a pause, the end of the stream or the length limit."""

    rate: int
    pcm: bytearray = field(default_factory=bytearray)
    speech_bytes: int = 0
    seconds: float = 0.0
    silence_s: float = 0.0


class LiveConnectionHandler:
    """The protocol state and the synthetic model of one client connection.

    Replies are queued and played one at a time by a worker task, so turns never
    interleave; ``interrupt`` cancels only the turn playing. With session resumption on,
    each ``sessionResumptionUpdate`` handle is registered with the host together with a
    :class:`ModelContext` snapshot, which a later setup naming that handle starts from.
    """

    def __init__(self, standin: HandlerHost, ws: ServerConnection, record: Connection) -> None:
        self.ws, self.record = ws, record
        self._standin = standin
        self._send_lock = asyncio.Lock()
        self._turns: asyncio.Queue[_Turn] = asyncio.Queue()
        self._current: _Turn | None = None
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._schedule: list[asyncio.TimerHandle] = []
        self._utterance: _Utterance | None = None
        self._pending_text: list[str] = []
        self._audio_s = 0.0
        self._frame_count = 0
        self._frame_size: media.Size | None = None
        self._texts: list[str] = []
        self._modality = "AUDIO"
        self._transcribe_input = self._transcribe_output = self._resumable = False
        self._turns_done = 0
        self._abort_after: int | None = None
        self._ended = False
        self._bench_stream: asyncio.Task[None] | None = None
        self._bench_stop = asyncio.Event()

    async def run(self) -> None:
        """Receive until the client leaves; a refusal (say invalid input) closes with its code."""
        try:
            async for raw in self.ws:
                await self._receive(raw)
        except Refusal as exc:
            logger.warning("Connection #%s: closing with %s: %s", self.record.index, exc.code, exc)
            self._standin.notify()
            reason = str(exc).encode()[:120].decode(errors="ignore")
            await self.ws.close(exc.code, reason)
        except ConnectionClosed as exc:
            logger.debug("Connection #%s: closed while receiving: %s", self.record.index, exc)

    async def shutdown(self) -> None:
        """Stop the timers and the reply worker."""
        self._ended = True
        for handle in [self._timer, *self._schedule]:
            if handle is not None:
                handle.cancel()
        for task in (self._worker, self._bench_stream):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})

    async def send(self, message: dict[str, Any]) -> None:
        """Send one server message outside any turn."""
        async with self._send_lock:
            await self._send_unlocked(message)

    async def interrupt(self) -> None:
        """Cancel the turn playing (no further chunks, no turnComplete) and say so."""
        turn = self._current
        if turn is not None:
            turn.cancelled = True
            turn.wake.set()
        logger.info("Connection #%s: interrupted (turn playing: %s)", self.record.index, bool(turn))
        await self.send({"serverContent": {"interrupted": True}})

    async def go_away(self, time_left: float, *, close: bool = True) -> None:
        """Send ``goAway``; with ``close``, close with 1000 once ``time_left`` has passed."""
        await self.send({"goAway": {"timeLeft": duration_json(time_left)}})
        self.record.go_away_at = _now()
        self._standin.probe.go_aways.append((self.record.index, probe.now_ns()))
        self._bench_stop.set()  # the model finishes the burst it is speaking, then stops
        logger.info("Connection #%s: goAway, %s s left", self.record.index, time_left)
        if close:
            self._later(time_left, self._close_at_end_of_life)
        self._standin.notify()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        if self.record.aborted:
            return
        self.record.aborted = True
        logger.info("Connection #%s: aborted", self.record.index)
        self.ws.transport.abort()
        self._standin.notify()

    async def call_tool(self, name: str, args: dict[str, Any], call_id: str) -> None:
        """Call a function now, outside the turn queue; a response gets a reply turn."""
        await self.send(self._tool_call_message(name, args, call_id))

    async def cancel_tool_calls(self, ids: list[str]) -> None:
        """Withdraw calls: send ``toolCallCancellation``; late responses get no reply."""
        for call_id in ids:
            self._standin.take_tool_call(call_id)
        self.record.tool_cancellations.extend(ids)
        await self.send({"toolCallCancellation": {"ids": list(ids)}})
        logger.info("Connection #%s: tool calls %s cancelled", self.record.index, ids)

    def abort_mid_turn(self, after_messages: int) -> None:
        """Abort as soon as a reply turn has sent ``after_messages`` of its messages.

        The turn playing counts (if it has sent that many already, it is dropped before
        its next message), else the next turn; the arming lasts until it fires.
        """
        if after_messages < 0:
            raise ValueError("after_messages must not be negative.")
        self._abort_after = after_messages

    async def _receive(self, raw: str | bytes) -> None:
        """Parse, record and dispatch one client message."""
        message = self._parse(raw)
        if self.record.setup is None:
            await self._on_setup(message)
            return
        self._keep(self.record.messages, message, len(raw))
        if len(message) != 1:
            raise InvalidInput("A client message must set exactly one field.")
        ((kind, body),) = message.items()
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "realtimeInput": self._on_realtime_input,
            "clientContent": self._on_client_content,
            "toolResponse": self._on_tool_response,
            "contextUpdate": self._on_context_update,
        }
        handler = handlers.get(kind)
        if handler is None or not isinstance(body, dict):
            raise InvalidInput(f"Unknown or invalid client message {kind!r}.")
        handler(body)
        self._standin.notify()

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        """The message as a camelCase dict; malformed JSON is recorded and rejected."""
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            text = raw if isinstance(raw, str) else repr(raw)
            self._keep(self.record.messages, {"malformed": text[:1000]}, len(raw))
            raise InvalidInput("Invalid JSON payload received.")
        normalised: dict[str, Any] = camelize(message)
        return normalised

    async def _on_setup(self, message: dict[str, Any]) -> None:
        """Remember the session configuration, then refuse it (Refusal) or acknowledge it."""
        setup = message.get("setup")
        config = (setup.get("generationConfig") or {}) if isinstance(setup, dict) else None
        if len(message) != 1 or not isinstance(setup, dict) or not isinstance(config, dict):
            self._keep(self.record.messages, message, 0)
            raise InvalidInput("The first message must be a valid setup message.")
        self.record.setup = setup
        handle = self.record.resumption_handle_sent = _resumption_handle(setup)
        self._standin.notify()
        delay = self._standin.behaviour.setup_delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        self._admit(handle)
        self._configure(setup, config)
        await self.send({"setupComplete": {}})
        self.record.setup_complete_at = _now()
        self._standin.notify()
        update = self._resumption_update()
        if update is not None:
            await self.send(update)
        self._worker = asyncio.create_task(self._work(), name=f"standin-{self.record.index}")
        self._worker.add_done_callback(self._worker_done)
        go_away_after = self._standin.behaviour.go_away_after_s
        if go_away_after is not None:
            self._later(go_away_after, self._scheduled_go_away)

    def _admit(self, handle: str | None) -> None:
        """Refuse the setup as the behaviour says, else restore the context ``handle`` names."""
        behaviour = self._standin.behaviour
        if behaviour.refuse_connections:
            raise Refusal(INTERNAL_ERROR, UNAVAILABLE_REASON)
        if not handle:
            return
        context = None if behaviour.refuse_resumption else self._standin.lookup_handle(handle)
        if context is None:
            raise Refusal(POLICY_VIOLATION, INVALID_HANDLE_REASON)
        self._restore(context)
        self.record.resumed_from = handle
        logger.info("Connection #%s: resumed from %s", self.record.index, handle)

    def _configure(self, setup: dict[str, Any], config: dict[str, Any]) -> None:
        """Take the reply modality, transcriptions and resumption from an accepted setup."""
        modalities = [str(item).upper() for item in config.get("responseModalities") or []]
        self._modality = "TEXT" if modalities == ["TEXT"] else "AUDIO"
        self._transcribe_input = "inputAudioTranscription" in setup
        self._transcribe_output = "outputAudioTranscription" in setup
        self._resumable = "sessionResumption" in setup
        logger.info(
            "Connection #%s: setup for %s, %s replies",
            self.record.index, setup.get("model"), self._modality,
        )  # fmt: skip

    def _context(self) -> ModelContext:
        """A snapshot of what the synthetic model knows of this session."""
        return ModelContext(
            turns_done=self._turns_done, audio_s=self._audio_s, frame_count=self._frame_count,
            frame_size=self._frame_size, texts=tuple(self._texts),
        )  # fmt: skip

    def _restore(self, context: ModelContext) -> None:
        """Continue from a snapshot taken on an earlier connection."""
        self._turns_done, self._audio_s = context.turns_done, context.audio_s
        self._frame_count, self._frame_size = context.frame_count, context.frame_size
        self._texts = list(context.texts)

    def _resumption_update(self) -> dict[str, Any] | None:
        """A sessionResumptionUpdate with a new handle for the current context, if wanted."""
        if not (self._resumable and self._standin.behaviour.resumption_updates):
            return None
        handle = f"standin-{self.record.index}-{self._turns_done}"
        self._standin.remember_handle(handle, self._context())
        return {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}

    def _on_realtime_input(self, body: dict[str, Any]) -> None:
        """Audio, video, text and activity signals."""
        for key, value in body.items():
            match key:
                case "audio":
                    self._on_audio(*_blob(value, "realtimeInput.audio"))
                case "video":
                    self._on_frame(*_blob(value, "realtimeInput.video"))
                case "mediaChunks":
                    for chunk in _as_list(value, "realtimeInput.mediaChunks"):
                        self._on_media(*_blob(chunk, "realtimeInput.mediaChunks"))
                case "text" if isinstance(value, str):
                    self._heard(value)
                    self._reply_to_text(value)
                case "audioStreamEnd" | "activityEnd":
                    self._end_utterance()
                case "activityStart":
                    pass
                case _:
                    raise InvalidInput(f"Unknown or invalid realtimeInput field {key!r}.")

    def _on_client_content(self, body: dict[str, Any]) -> None:
        """Turns of user text (and images); a complete turn gets a reply."""
        for turn in _as_list(body.get("turns") or [], "clientContent.turns"):
            if not isinstance(turn, dict):
                raise InvalidInput("clientContent.turns must hold Content objects.")
            for part in _as_list(turn.get("parts") or [], "clientContent.turns.parts"):
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and turn.get("role", "user") == "user":
                    self._heard(text)
                    self._pending_text.append(text)
                inline = part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and str(inline.get("mimeType")).startswith("image/"):
                    self._on_frame(*_blob(inline, "clientContent inlineData"))
        if body.get("turnComplete"):
            text = " ".join(self._pending_text)
            self._pending_text.clear()
            self._reply_to_text(text)

    def _heard(self, text: str) -> None:
        """Record a user text and add it to the session's context."""
        self._arrived("text", probe.read_text_stamp(text))
        self.record.texts.append(text)
        self._texts.append(text)

    def _arrived(self, kind: str, found: tuple[int, int, int] | None) -> None:
        """Time a stamped payload; the first one starts the benchmark's model speech."""
        if found is None:
            return
        self._standin.probe.arrived(kind, found, self.record.index)
        if self._bench_stream is None and self._standin.behaviour.bench_talk_s > 0:
            self._bench_stream = asyncio.create_task(
                self._stream_bench_speech(found[0]), name=f"standin-bench-{self.record.index}"
            )

    def _on_tool_response(self, body: dict[str, Any]) -> None:
        """Record each function response; one to a pending call of ours gets a reply turn."""
        for response in _as_list(body.get("functionResponses") or [], "functionResponses"):
            self.record.tool_responses.append(response)
            call_id = response.get("id") if isinstance(response, dict) else None
            name = self._standin.take_tool_call(call_id) if isinstance(call_id, str) else None
            if name is not None:
                answer = json.dumps(response.get("response"), sort_keys=True)
                self._turns.put_nowait(_Turn(f"Function {name} returned {answer}.", "TEXT"))

    def _tool_call_message(self, name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
        """A toolCall message for one function call, recorded and awaiting its response."""
        call = {"id": call_id, "name": name, "args": args}
        self.record.tool_calls.append(call)
        self._standin.remember_tool_call(call_id, name)
        logger.info("Connection #%s: calling %s (%s)", self.record.index, name, call_id)
        return {"toolCall": {"functionCalls": [call]}}

    def _on_context_update(self, body: dict[str, Any]) -> None:
        """Accepted and recorded only: the synthetic model has no context to update."""
        logger.info("Connection #%s: context update %s", self.record.index, sorted(body))

    def _on_media(self, mime: str, data: bytes) -> None:
        """A legacy media chunk: audio by its MIME type, else a video frame."""
        if mime.startswith("audio/"):
            self._on_audio(mime, data)
        else:
            self._on_frame(mime, data)

    def _on_frame(self, mime: str, data: bytes) -> None:
        """Count one video frame and remember its size."""
        self._arrived("frame", probe.read_stamp(data))
        self._keep(self.record.frames, (mime, data), len(data))
        self._frame_count += 1
        self._frame_size = media.image_dimensions(data)

    def _on_audio(self, mime: str, data: bytes) -> None:
        """Record a chunk and run a simple energy voice-activity detector over it."""
        self._arrived("audio", probe.read_stamp(data))
        self._keep(self.record.audio, (mime, data), len(data))
        rate = media.sample_rate(mime)
        seconds = media.pcm16_duration(data, rate)
        self._audio_s += seconds
        behaviour = self._standin.behaviour
        if not behaviour.analyse_audio:
            return
        loud = media.pcm16_rms(data) >= behaviour.silence_rms
        utterance = self._utterance
        if utterance is None:
            if not loud:
                return
            utterance = self._utterance = _Utterance(rate)
        utterance.pcm += data
        utterance.seconds += seconds
        if loud:
            utterance.speech_bytes, utterance.silence_s = len(utterance.pcm), 0.0
            self._arm_timer(behaviour.speech_gap_s)
        else:
            utterance.silence_s += seconds
        epsilon = 1e-6
        if (
            utterance.silence_s >= behaviour.speech_gap_s - epsilon
            or utterance.seconds >= behaviour.max_utterance_s - epsilon
        ):
            self._end_utterance()

    def _arm_timer(self, delay: float) -> None:
        """End the utterance if no speech arrives within ``delay`` seconds."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._end_utterance)

    def _end_utterance(self) -> None:
        """Transcribe the utterance (if asked to) and queue the reply to it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return
        speech = bytes(utterance.pcm[: utterance.speech_bytes])
        heard = media.pcm16_duration(speech, utterance.rate)
        analysed = speech[: 2 * round(PITCH_ANALYSIS_S * utterance.rate)]
        frequency = media.dominant_frequency(analysed, utterance.rate)
        pitch = f" at about {frequency:.0f} Hz" if frequency else ""
        prelude = [
            {"serverContent": {"inputTranscription": {"text": piece}}}
            for piece in _fragments(f"(heard {heard:.1f} s of audio{pitch})", 3)
            if self._transcribe_input
        ]
        reply = f"I heard {heard:.1f} s of audio. {self._summary()}"
        self._turns.put_nowait(_Turn(reply, "AUDIO", prelude))
        self._standin.notify()

    def _reply_to_text(self, text: str) -> None:
        """Queue the reply to a user text: a save_note call if it asks for one."""
        if text.strip() == probe.END_TEXT:
            self._spawn(self._end_bench())
            return
        note = _note_args(text, self._standin.behaviour.note_trigger)
        if note is not None:
            call = {"name": "save_note", "args": note}
            self._turns.put_nowait(_Turn("", "TEXT", tool_call=call))
            return
        self._turns.put_nowait(_Turn(f'You said: "{text}". {self._summary()}', "TEXT"))

    async def _end_bench(self) -> None:
        """Stop the benchmark speech, then say ``bench-end``: nothing stamped comes after it."""
        self._bench_stop.set()
        if self._bench_stream is not None:
            await asyncio.wait({self._bench_stream})
        self._turns.put_nowait(_Turn(probe.END_REPLY, "TEXT"))

    async def _stream_bench_speech(self, tag: int) -> None:
        """Speak stamped silence in real time, in bursts that end with turnComplete."""
        behaviour = self._standin.behaviour
        chunk_s = behaviour.audio_chunk_s
        silence = bytes(max(probe.STAMP.size, 2 * round(chunk_s * OUTPUT_RATE)))
        per_burst = max(1, round(behaviour.bench_talk_s / chunk_s))
        loop = asyncio.get_running_loop()
        sent = self._standin.probe.sent_down
        seq, due = 0, loop.time()
        with contextlib.suppress(ConnectionClosed):
            while not self._bench_stop.is_set():
                for _ in range(per_burst):
                    pcm = probe.stamp_pcm(silence, tag, seq)
                    blob = {"mimeType": OUTPUT_MIME, "data": media.b64encode(pcm)}
                    message = _content(
                        modelTurn={"parts": [{"inlineData": blob}]},
                        outputTranscription={"text": "la "},
                    )
                    async with self._send_lock:
                        await self._send_unlocked(message)
                    sent[tag] += 1
                    seq += 1
                    due += chunk_s
                    await asyncio.sleep(max(0.0, due - loop.time()))
                usage = self._usage(_Turn("", "AUDIO"))
                await self.send({"serverContent": {"turnComplete": True}, "usageMetadata": usage})
                self._turns_done += 1
                update = self._resumption_update()
                if update is not None:
                    await self.send(update)
                due += behaviour.bench_silence_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bench_stop.wait(), max(0.0, due - loop.time()))

    def _summary(self) -> str:
        """What this connection has received so far, as the replies state it."""
        frames = "no frames"
        if self._frame_count:
            size = "x".join(map(str, self._frame_size)) if self._frame_size else "unknown size"
            frames = f"{self._frame_count} frames (latest {size})"
        return f"So far I have received {frames} and {self._audio_s:.1f} s of audio."

    async def _work(self) -> None:
        """Play queued turns one after another."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                turn = await self._turns.get()
                self._current = turn
                try:
                    await self._play(turn)
                finally:
                    self._current = None
                if self.record.aborted:
                    return

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A crashed reply worker closes the connection with 1011 instead of hanging it."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("Connection #%s: reply worker failed", self.record.index, exc_info=error)
        self._spawn(self.ws.close(INTERNAL_ERROR, "Stand-in internal error."))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in a task kept alive until it ends (never cancelled)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay`` seconds unless the connection has ended by then."""
        if self._ended:
            return
        self._schedule.append(asyncio.get_running_loop().call_later(delay, callback))

    def _scheduled_go_away(self) -> None:
        """``Behaviour.go_away_after_s`` has passed since setupComplete: say goAway."""
        self._spawn(self._go_away_quietly(self._standin.behaviour.go_away_time_left_s))

    async def _go_away_quietly(self, time_left: float) -> None:
        """``go_away``, ignoring a connection that closed meanwhile."""
        with contextlib.suppress(ConnectionClosed):
            await self.go_away(time_left)

    def _close_at_end_of_life(self) -> None:
        """The time a goAway announced is up: close normally (a no-op if closed already)."""
        logger.info("Connection #%s: time left after goAway is up", self.record.index)
        self._spawn(self.ws.close(NORMAL_CLOSURE, GO_AWAY_CLOSE_REASON))

    async def _play(self, turn: _Turn) -> None:
        """Send one turn step by step, stopping as soon as it is cancelled."""
        behaviour = self._standin.behaviour
        if not await self._emit(turn, turn.prelude):
            return
        await self._pause(turn, behaviour.reply_delay_s)
        if turn.tool_call is not None:  # the reply goes on once the response is in
            call_id = self._standin.new_call_id()
            message = self._tool_call_message(
                turn.tool_call["name"], turn.tool_call["args"], call_id
            )
            sent_before = turn.sent
            await self._emit(turn, [message])
            if turn.sent == sent_before:  # interrupted first: the call was never made
                self._standin.take_tool_call(call_id)
                self.record.tool_calls.remove(message["toolCall"]["functionCalls"][0])
            return
        for step in self._script(turn, behaviour):
            if not await self._emit(turn, step):
                return
            await self._pause(turn, behaviour.chunk_interval_s)

    def _script(self, turn: _Turn, behaviour: Behaviour) -> Iterator[list[dict[str, Any]]]:
        """The messages of one reply, grouped into steps sent without a pause."""
        by_words = math.ceil(len(_WORD_BOUNDARY.split(turn.reply)) / WORDS_PER_TEXT_PART)
        if self._modality == "AUDIO":
            pcm = media.tone_pcm16(behaviour.reply_tone_hz, behaviour.reply_audio_s, OUTPUT_RATE)
            size = max(2, 2 * round(behaviour.audio_chunk_s * OUTPUT_RATE))
            chunks = [pcm[start : start + size] for start in range(0, len(pcm), size)]
            pieces = (
                _fragments(turn.reply, len(chunks) or by_words) if self._transcribe_output else []
            )
            for index in range(max(len(chunks), len(pieces))):
                step = []
                if index < len(chunks):
                    blob = {"mimeType": OUTPUT_MIME, "data": media.b64encode(chunks[index])}
                    step.append(_content(modelTurn={"parts": [{"inlineData": blob}]}))
                if index < len(pieces):
                    step.append(_content(outputTranscription={"text": pieces[index]}))
                yield step
        else:
            for piece in _fragments(turn.reply, by_words):
                yield [_content(modelTurn={"parts": [{"text": piece}]})]
        yield [_content(generationComplete=True)]
        self._turns_done += 1
        final = [{"serverContent": {"turnComplete": True}, "usageMetadata": self._usage(turn)}]
        update = self._resumption_update()
        if update is not None:
            final.append(update)
        yield final

    def _usage(self, turn: _Turn) -> dict[str, Any]:
        """The deterministic usageMetadata of one turn."""
        prompt = self._standin.behaviour.prompt_tokens_per_turn
        response = self._standin.behaviour.response_tokens_per_turn
        return {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": turn.input_modality, "tokenCount": prompt}],
            "responseTokensDetails": [{"modality": self._modality, "tokenCount": response}],
        }

    async def _emit(self, turn: _Turn, messages: list[dict[str, Any]]) -> bool:
        """Send messages of ``turn`` unless it was cancelled or dropped; False once it is."""
        async with self._send_lock:
            if turn.cancelled:
                return False
            for message in messages:
                if self._dropped(turn):
                    return False
                await self._send_unlocked(message)
                turn.sent += 1
            return not self._dropped(turn)

    def _dropped(self, turn: _Turn) -> bool:
        """Whether the connection is aborted, by ``abort_mid_turn`` now if ``turn`` is due."""
        if self._abort_after is not None and turn.sent >= self._abort_after:
            self._abort_after = None
            self.abort()
        return self.record.aborted

    async def _pause(self, turn: _Turn, seconds: float) -> None:
        """Wait ``seconds`` (cut short by an interrupt); always lets other tasks run."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.wake.wait(), seconds)

    async def _send_unlocked(self, message: dict[str, Any]) -> None:
        """Send and record one message; the caller holds the send lock."""
        text = json.dumps(message, separators=(",", ":"))
        await self.ws.send(text)
        self._keep(self.record.replies, message, len(text))
        self._standin.notify()

    def _keep(self, items: list[Any], item: Any, size: int) -> None:
        """Append ``item`` to a media record unless the record limit is reached."""
        if self._standin.may_record(self.record, size):
            items.append(item)


def duration_json(seconds: float) -> str:
    """``seconds`` as protobuf Duration JSON, with 0, 3, 6 or 9 decimals: ``"1.500s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"Not a valid time left: {seconds!r}")
    nanos = round(seconds * 1e9)
    whole, fraction = divmod(nanos, 10**9)
    digits = f"{fraction:09d}"
    while digits.endswith("000"):
        digits = digits[:-3]
    return f"{whole}.{digits}s" if digits else f"{whole}s"


def _now() -> float:
    """The running loop's clock, which every recorded time uses."""
    return asyncio.get_running_loop().time()


def _resumption_handle(setup: dict[str, Any]) -> str | None:
    """The handle a setup asks to resume (None: a new session)."""
    resumption = setup.get("sessionResumption")
    if resumption is None:
        return None
    if not isinstance(resumption, dict):
        raise InvalidInput("setup.sessionResumption must be an object.")
    handle = resumption.get("handle")
    if handle is not None and not isinstance(handle, str):
        raise InvalidInput("setup.sessionResumption.handle must be a string.")
    return handle


def _note_args(text: str, trigger: str | None) -> dict[str, str] | None:
    """The save_note arguments a user text asks for, or None if it holds no ``trigger``."""
    if not trigger:
        return None
    found = re.search(re.escape(trigger), text, re.IGNORECASE)
    if found is None:
        return None
    rest = text[found.end() :].strip()
    if "|" in rest:
        title, body = (part.strip() for part in rest.split("|", 1))
    else:
        title, body = rest[:NOTE_TITLE_CHARS].strip(), rest
    return {"title": title, "body": body}


def _content(**fields: Any) -> dict[str, Any]:
    """A serverContent message."""
    return {"serverContent": fields}


def _fragments(text: str, parts: int) -> list[str]:
    """``text`` cut at word boundaries into at most ``parts`` pieces that join back to it."""
    if not text:
        return []
    words = _WORD_BOUNDARY.split(text)
    count = max(1, min(parts, len(words)))
    return [
        "".join(words[len(words) * k // count : len(words) * (k + 1) // count])
        for k in range(count)
    ]


def _as_list(value: Any, where: str) -> list[Any]:
    """``value`` if it is a JSON array, else an InvalidInput error."""
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list.")
    return value


def _blob(value: Any, where: str) -> tuple[str, bytes]:
    """(mimeType, decoded data) of a Blob; either base64 alphabet is accepted."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise InvalidInput(f"{where} must be a Blob with base64 data.")
    try:
        data = media.b64decode_any(value["data"])
    except ValueError as exc:
        raise InvalidInput(f"{where} data is not valid base64.") from exc
    return str(value.get("mimeType") or ""), data
