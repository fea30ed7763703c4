"""The per-connection protocol handling and synthetic model of the Gemini Live stand-in.

A :class:`LiveConnectionHandler` receives one client's messages, records them in the
connection's :class:`Connection` and answers with deterministic, synthetic model turns:
an audio reply to each utterance (found by a simple energy voice-activity detector) and
a text reply to each user text. It reaches the server that accepted the connection only
through the narrow :class:`HandlerHost` protocol, which ``StandIn`` implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from sessions_app.live.emulator import media
from sessions_app.live.emulator.records import Behaviour, Connection, camelize

logger = logging.getLogger(__name__)

INVALID_ARGUMENT = 1007
OUTPUT_RATE = 24000
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
WORDS_PER_TEXT_PART = 3
PITCH_ANALYSIS_S = 2.0  # bounds the pure-Python pitch estimate's cost per utterance
_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


class HandlerHost(Protocol):
    """What a connection handler needs from its server (``StandIn`` provides it)."""

    behaviour: Behaviour

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""


class InvalidInput(Exception):
    """A client message the real service would reject (closes with 1007)."""


@dataclass(eq=False)
class _Turn:
    """One model reply waiting in, or playing from, a connection's turn queue."""

    reply: str
    input_modality: str
    prelude: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
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
    interleave; ``interrupt`` cancels only the turn playing.
    """

    def __init__(self, standin: HandlerHost, ws: ServerConnection, record: Connection) -> None:
        self.ws, self.record = ws, record
        self._standin = standin
        self._send_lock = asyncio.Lock()
        self._turns: asyncio.Queue[_Turn] = asyncio.Queue()
        self._current: _Turn | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._utterance: _Utterance | None = None
        self._pending_text: list[str] = []
        self._audio_s = 0.0
        self._frame_count = 0
        self._frame_size: media.Size | None = None
        self._modality = "AUDIO"
        self._transcribe_input = self._transcribe_output = self._resumable = False
        self._turns_done = 0

    async def run(self) -> None:
        """Receive until the client leaves; invalid input closes with 1007."""
        try:
            async for raw in self.ws:
                await self._receive(raw)
        except InvalidInput as exc:
            logger.warning("Connection #%s: invalid input: %s", self.record.index, exc)
            self._standin.notify()
            reason = str(exc).encode()[:120].decode(errors="ignore")
            await self.ws.close(INVALID_ARGUMENT, reason)
        except ConnectionClosed as exc:
            logger.debug("Connection #%s: closed while receiving: %s", self.record.index, exc)

    async def shutdown(self) -> None:
        """Stop the utterance timer and the reply worker."""
        if self._timer is not None:
            self._timer.cancel()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait({self._worker})

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
        """Remember the session configuration and acknowledge it."""
        setup = message.get("setup")
        config = (setup.get("generationConfig") or {}) if isinstance(setup, dict) else None
        if len(message) != 1 or not isinstance(setup, dict) or not isinstance(config, dict):
            self._keep(self.record.messages, message, 0)
            raise InvalidInput("The first message must be a valid setup message.")
        self.record.setup = setup
        modalities = [str(item).upper() for item in config.get("responseModalities") or []]
        self._modality = "TEXT" if modalities == ["TEXT"] else "AUDIO"
        self._transcribe_input = "inputAudioTranscription" in setup
        self._transcribe_output = "outputAudioTranscription" in setup
        self._resumable = "sessionResumption" in setup
        logger.info(
            "Connection #%s: setup for %s, %s replies",
            self.record.index, setup.get("model"), self._modality,
        )  # fmt: skip
        await self.send({"setupComplete": {}})
        self._worker = asyncio.create_task(self._work(), name=f"standin-{self.record.index}")
        self._worker.add_done_callback(self._worker_done)

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
                    self.record.texts.append(value)
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
                    self.record.texts.append(text)
                    self._pending_text.append(text)
                inline = part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and str(inline.get("mimeType")).startswith("image/"):
                    self._on_frame(*_blob(inline, "clientContent inlineData"))
        if body.get("turnComplete"):
            text = " ".join(self._pending_text)
            self._pending_text.clear()
            self._reply_to_text(text)

    def _on_tool_response(self, body: dict[str, Any]) -> None:
        """Record each function response (the stand-in never calls tools itself)."""
        for response in _as_list(body.get("functionResponses") or [], "functionResponses"):
            self.record.tool_responses.append(response)

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
        self._keep(self.record.frames, (mime, data), len(data))
        self._frame_count += 1
        self._frame_size = media.image_dimensions(data)

    def _on_audio(self, mime: str, data: bytes) -> None:
        """Record a chunk and run a simple energy voice-activity detector over it."""
        self._keep(self.record.audio, (mime, data), len(data))
        rate = media.sample_rate(mime)
        seconds = media.pcm16_duration(data, rate)
        self._audio_s += seconds
        behaviour = self._standin.behaviour
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
        """Queue the reply to a user text."""
        self._turns.put_nowait(_Turn(f'You said: "{text}". {self._summary()}', "TEXT"))

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

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A crashed reply worker closes the connection with 1011 instead of hanging it."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("Connection #%s: reply worker failed", self.record.index, exc_info=error)
        self._closer = asyncio.ensure_future(self.ws.close(1011, "Stand-in internal error."))

    async def _play(self, turn: _Turn) -> None:
        """Send one turn step by step, stopping as soon as it is cancelled."""
        behaviour = self._standin.behaviour
        if not await self._emit(turn, turn.prelude):
            return
        await self._pause(turn, behaviour.reply_delay_s)
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
        if self._resumable and behaviour.resumption_updates:
            handle = f"standin-{self.record.index}-{self._turns_done}"
            final.append({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
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
        """Send messages of ``turn`` unless it was cancelled; False once it is."""
        async with self._send_lock:
            if turn.cancelled:
                return False
            for message in messages:
                await self._send_unlocked(message)
        return True

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
