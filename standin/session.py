"""The per-connection protocol handling and synthetic model of the Gemini Live stand-in.

A :class:`LiveConnectionHandler` checks one client's setup against its model's profile
(:mod:`standin.setup`, :mod:`standin.profiles`; a retired or unknown id closes with 1008,
TEXT replies and refused settings with 1007), records every message in the connection's
:class:`Connection` and answers with deterministic, synthetic model turns
(:mod:`standin.model`, :mod:`standin.turns`), always in AUDIO with an output
transcription: one to each utterance (:mod:`standin.listener`; frames count as the turn
coverage says) and one to each user text. The parts share a
:class:`standin.state.SessionState`; the server is reached only through the narrow
:class:`HandlerHost` protocol, which ``StandIn`` implements.

As today's service does: an interrupted turn (``StandIn.interrupt``, a barge-in, an
INTERRUPT function response) sends ``interrupted`` and then ``turnComplete`` with usage;
the user's input transcription comes late and split, partly after the reply started; a
text holding ``Behaviour.refuse_trigger`` gets only a turnComplete with
``turnCompleteReason: PROHIBITED_INPUT_CONTENT``; on 3.8 models each reply is split by a
turnComplete with ``interactionStatus: IN_PROGRESS``. Function calls (``StandIn.call_tool``,
``Behaviour.note_trigger``) block or not as the model and the declaration say
(:mod:`standin.tools`); while one is pending every session resumption handle sent is
``resumable: false``. Faults are scriptable: refused setups, ``goAway`` then a close,
unknown message kinds and malformed frames, dropped TCP connections (the client sees 1006).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from standin import probe
from standin.model import SyntheticModel
from standin.protocol import (
    GO_AWAY_CLOSE_REASON,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    UNAVAILABLE_REASON,
    InvalidInput,
    Outgoing,
    Refusal,
    as_list,
    blob,
    cut_reason,
    duration_json,
    now,
)
from standin.records import Connection, camelize
from standin.setup import model_profile, read_config, resumption_handle
from standin.state import HandlerHost, SessionState
from standin.tools import ToolDesk

__all__ = ["HandlerHost", "LiveConnectionHandler", "duration_json"]

logger = logging.getLogger(__name__)


class LiveConnectionHandler:
    """The protocol state and the synthetic model of one client connection.

    With session resumption on, each ``sessionResumptionUpdate`` handle is kept by the
    host's ``HandleBook`` with a ``ModelContext`` snapshot, which a later setup naming
    that handle starts from (the connection then joins the handle's conversation).
    """

    def __init__(self, standin: HandlerHost, ws: ServerConnection, record: Connection) -> None:
        self.ws, self.record = ws, record
        self._standin = standin
        self._state = state = SessionState(standin, ws, record)
        self._speaker, self._listener = state.speaker, state.listener
        self._tools = ToolDesk(state)
        self._model = SyntheticModel(state, self._tools)
        self._schedule: list[asyncio.TimerHandle] = []
        self._pending_text: list[str] = []
        self._ended = False

    async def run(self) -> None:
        """Receive until the client leaves; a refusal (say invalid input) closes with its code."""
        try:
            async for raw in self.ws:
                await self._receive(raw)
        except Refusal as exc:
            logger.warning("Connection #%s: closing with %s: %s", self.record.index, exc.code, exc)
            self._standin.notify()
            await self.ws.close(exc.code, cut_reason(str(exc)))
        except ConnectionClosed as exc:
            logger.debug("Connection #%s: closed while receiving: %s", self.record.index, exc)

    async def shutdown(self) -> None:
        """Stop the timers and the reply worker."""
        self._ended = True
        for handle in self._schedule:
            handle.cancel()
        self._listener.stop()
        await self._speaker.stop()
        await self._model.stop()

    async def send(self, message: Outgoing) -> None:
        """Send one server message (a str: a text frame exactly as given) outside any turn."""
        await self._speaker.send(message)

    async def interrupt(self) -> None:
        """Cut the turn playing (if any): ``interrupted``, then its turnComplete with usage."""
        async with self._speaker.lock:
            await self._state.interrupt_unlocked(self._speaker.playing())

    async def go_away(self, time_left: float, *, close: bool = True) -> None:
        """Send ``goAway``; with ``close``, close with 1000 once ``time_left`` has passed."""
        await self.send({"goAway": {"timeLeft": duration_json(time_left)}})
        self.record.go_away_at = now()
        self._standin.probe.go_aways.append((self.record.index, probe.now_ns()))
        self._model.stop_bench()
        logger.info("Connection #%s: goAway, %s s left", self.record.index, time_left)
        if close:
            self._later(time_left, self._close_at_end_of_life)
        self._standin.notify()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self._speaker.abort()

    def abort_mid_turn(self, after_messages: int) -> None:
        """Abort as soon as the current or next reply turn has sent ``after_messages``."""
        self._speaker.abort_mid_turn(after_messages)

    async def call_tool(self, name: str, args: dict[str, Any], call_id: str) -> None:
        """Call a function now, outside the turn queue, then send a (non-resumable) handle."""
        await self._tools.call(name, args, call_id)

    async def cancel_tool_calls(self, ids: list[str]) -> None:
        """Withdraw calls: send ``toolCallCancellation``; late responses get no reply."""
        await self._tools.cancel(ids)

    async def _receive(self, raw: str | bytes) -> None:
        """Parse, record and dispatch one client message."""
        message = self._parse(raw)
        if self.record.setup is None:
            await self._on_setup(message)
            return
        self._speaker.keep(self.record.messages, message, len(raw))
        if len(message) != 1:
            raise InvalidInput("A client message must set exactly one field.")
        ((kind, body),) = message.items()
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "realtimeInput": self._on_realtime_input,
            "clientContent": self._on_client_content,
            "toolResponse": self._tools.on_response,
            "contextUpdate": self._on_context_update,
        }
        handler = handlers.get(kind)
        if handler is None or not isinstance(body, dict):
            raise InvalidInput(f"Unknown or invalid client message {kind!r}.")
        await handler(body)
        self._standin.notify()

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        """The message as a camelCase dict; malformed JSON is recorded and rejected."""
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            text = raw if isinstance(raw, str) else repr(raw)
            self._speaker.keep(self.record.messages, {"malformed": text[:1000]}, len(raw))
            raise InvalidInput("Invalid JSON payload received.")
        normalised: dict[str, Any] = camelize(message)
        return normalised

    async def _on_setup(self, message: dict[str, Any]) -> None:
        """Remember the session configuration, then refuse it (Refusal) or acknowledge it."""
        setup = message.get("setup")
        config = (setup.get("generationConfig") or {}) if isinstance(setup, dict) else None
        if len(message) != 1 or not isinstance(setup, dict) or not isinstance(config, dict):
            self._speaker.keep(self.record.messages, message, 0)
            raise InvalidInput("The first message must be a valid setup message.")
        self.record.setup = setup
        handle = self.record.resumption_handle_sent = resumption_handle(setup)
        self._standin.notify()
        delay = self._standin.behaviour.setup_delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        self._admit(setup, handle)
        await self.send({"setupComplete": {}})
        self.record.setup_complete_at = now()
        self._standin.notify()
        await self._state.send_all(self._state.resumption_update())
        self._speaker.start()
        go_away_after = self._standin.behaviour.go_away_after_s
        if go_away_after is not None:
            self._later(go_away_after, self._scheduled_go_away)

    def _admit(self, setup: dict[str, Any], handle: str | None) -> None:
        """Refuse the setup as the service would, else take its configuration and context."""
        behaviour, state, record = self._standin.behaviour, self._state, self.record
        if behaviour.refuse_connections:
            raise Refusal(INTERNAL_ERROR, UNAVAILABLE_REASON)
        profile = record.profile = model_profile(setup, record.path)
        config = read_config(setup, profile)
        self._listener.configure(config)
        record.turn_coverage = config.turn_coverage
        record.media_resolution = config.media_resolution
        record.thinking_level = config.thinking_level
        if handle:
            issued = self._standin.handles.check(handle, now(), behaviour, self._standin.is_open)
            self._listener.restore(issued.context)
            state.turns_done, state.conversation = issued.context.turns_done, issued.conversation
            record.resumed_from = handle
            logger.info("Connection #%s: resumed from %s", record.index, handle)
        record.conversation = state.conversation
        state.config = config
        logger.info("Connection #%s: setup for %s accepted", record.index, profile.name)

    async def _on_realtime_input(self, body: dict[str, Any]) -> None:
        """Audio, video, text and activity signals."""
        for key, value in body.items():
            match key:
                case "audio":
                    await self._on_audio(*blob(value, "realtimeInput.audio"))
                case "video":
                    self._on_frame(*blob(value, "realtimeInput.video"))
                case "mediaChunks":
                    for chunk in as_list(value, "realtimeInput.mediaChunks"):
                        mime, data = blob(chunk, "realtimeInput.mediaChunks")
                        if mime.startswith("audio/"):
                            await self._on_audio(mime, data)
                        else:
                            self._on_frame(mime, data)
                case "text" if isinstance(value, str):
                    self._heard(value)
                    self._model.answer_text(value)
                case "audioStreamEnd":
                    self._listener.audio_stream_end()
                case "activityEnd":
                    self._listener.activity_end()
                case "activityStart":
                    self._listener.activity_start()
                case _:
                    raise InvalidInput(f"Unknown or invalid realtimeInput field {key!r}.")

    async def _on_client_content(self, body: dict[str, Any]) -> None:
        """Turns of text (and images): context; a complete turn gets a reply to its user text."""
        for turn in as_list(body.get("turns") or [], "clientContent.turns"):
            if not isinstance(turn, dict):
                raise InvalidInput("clientContent.turns must hold Content objects.")
            user = turn.get("role", "user") == "user"
            if user:
                self._listener.begin_user_turn()
            for part in as_list(turn.get("parts") or [], "clientContent.turns.parts"):
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and user:
                    self._heard(text, new_turn=False)
                    self._pending_text.append(text)
                elif isinstance(text, str):
                    self._listener.hear_history(text)
                inline = part.get("inlineData") if isinstance(part, dict) else None
                if isinstance(inline, dict) and str(inline.get("mimeType")).startswith("image/"):
                    self._on_frame(*blob(inline, "clientContent inlineData"), explicit=True)
        if body.get("turnComplete"):
            text = " ".join(self._pending_text)
            self._pending_text.clear()
            self._model.answer_text(text)

    async def _on_context_update(self, body: dict[str, Any]) -> None:
        """Accepted and recorded only: the synthetic model has no context to update."""
        logger.info("Connection #%s: context update %s", self.record.index, sorted(body))

    def _heard(self, text: str, *, new_turn: bool = True) -> None:
        """Record a user text and add it to the session's context."""
        self._arrived("text", probe.read_text_stamp(text))
        self.record.texts.append(text)
        self._listener.hear_text(text, new_turn=new_turn)

    def _arrived(self, kind: str, found: tuple[int, int, int] | None) -> None:
        """Time a stamped payload; the first one starts the benchmark's model speech."""
        if found is None:
            return
        self._standin.probe.arrived(kind, found, self.record.index)
        self._model.start_bench(found[0])

    def _on_frame(self, mime: str, data: bytes, *, explicit: bool = False) -> None:
        """Record one video frame and when it came; the model counts it as the coverage says."""
        arrived_at = time.time()
        self._arrived("frame", probe.read_stamp(data))
        if self._speaker.keep(self.record.frames, (mime, data), len(data)):
            self.record.frame_arrivals.append(arrived_at)
        self._listener.see_frame(data, explicit=explicit)

    async def _on_audio(self, mime: str, data: bytes) -> None:
        """Record a chunk; speech starting while the model speaks is a barge-in."""
        self._arrived("audio", probe.read_stamp(data))
        self._speaker.keep(self.record.audio, (mime, data), len(data))
        if self._listener.hear_audio(mime, data) and self._standin.behaviour.barge_in:
            await self._state.cut_playing()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay`` seconds unless the connection has ended by then."""
        if self._ended:
            return
        self._schedule.append(asyncio.get_running_loop().call_later(delay, callback))

    def _scheduled_go_away(self) -> None:
        """``Behaviour.go_away_after_s`` has passed since setupComplete: say goAway."""
        self._speaker.spawn(self._go_away_quietly(self._standin.behaviour.go_away_time_left_s))

    async def _go_away_quietly(self, time_left: float) -> None:
        """``go_away``, ignoring a connection that closed meanwhile."""
        with contextlib.suppress(ConnectionClosed):
            await self.go_away(time_left)

    def _close_at_end_of_life(self) -> None:
        """The time a goAway announced is up: close normally (a no-op if closed already)."""
        logger.info("Connection #%s: time left after goAway is up", self.record.index)
        self._speaker.spawn(self.ws.close(NORMAL_CLOSURE, GO_AWAY_CLOSE_REASON))
