"""One live session: the upstream relay, the recorder, and what the browser is told.

Whatever goes wrong ends the session properly: a failure to open (the model refused, a
setting that cannot be used) is stored on the row and raised as :class:`SessionFailed`;
an error while the session runs, in the relay or in handling one of its events, ends it
as failed with a message for the browser and a close code. No row is left ``active``.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils.translation import gettext, gettext_noop

from sessions_app import metrics, protocol, services
from sessions_app.events_log import log_event
from sessions_app.live import events
from sessions_app.live.aio import cancel_and_wait
from sessions_app.live.client import (
    Endpoint,
    build_client,
    build_connect_config,
    endpoint_for,
    resilience_for,
)
from sessions_app.live.config import LiveConfig
from sessions_app.live.events import FunctionResult
from sessions_app.live.models import ToolBehaviour, model_info
from sessions_app.live.relay import LiveRelay, UpstreamUnavailable
from sessions_app.model_errors import AT_SETUP, MID_SESSION, ModelFailure, model_failure
from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.outbound import (
    Interrupted,
    Status,
    Transcript,
    TurnComplete,
    encode,
    encode_audio,
)
from sessions_app.outbound import error as error_message
from sessions_app.prices import Prices, prices_for
from sessions_app.session import tools
from sessions_app.session.endings import INTERNAL_ERROR_MESSAGE, ending
from sessions_app.session.outbox import OutboxLimits, SpeechOutbox
from sessions_app.session.recorder import SessionRecorder
from sessions_app.session.spending import DailyBudget, Verdict, usage_message
from sessions_app.share_config import SessionLimits

logger = logging.getLogger(__name__)

EndReason = LiveSession.EndReason
Role = TranscriptEntry.Role
Source = TranscriptEntry.Source
INTERNAL = protocol.ErrorCode.INTERNAL_ERROR
STORAGE_CODE = protocol.ErrorCode.STORAGE_UNAVAILABLE
MIC_MODE_CODE = protocol.ErrorCode.WRONG_MIC_MODE
HEARTBEAT_RETRY_S = 1.0  # a heartbeat the database missed is tried again this soon

OUTPUT_BYTES_PER_SECOND = 48000  # PCM16 mono 24 kHz
# Sentences for people: marked here, translated when sent (sessions_app.outbound.encode).
MISCONFIGURED_MESSAGE = gettext_noop(
    "The assistant is not configured correctly, so the session could not start."
    " Tell an administrator."
)
# turnCompleteReason values, for the user.
REFUSED_TURN_MESSAGES = {
    "PROHIBITED_INPUT_CONTENT": gettext_noop(
        "The model would not answer that: the input was refused."
    ),
    "IMAGE_PROHIBITED_INPUT_CONTENT": gettext_noop(
        "The model would not answer that: the screen was refused."
    ),
    "RESPONSE_REJECTED": gettext_noop("The model's answer was withheld by the service."),
    "MALFORMED_FUNCTION_CALL": gettext_noop("The model's answer failed; ask again."),
    "NEED_MORE_INPUT": gettext_noop("The model needs more to go on: say or type a little more."),
}
REFUSED_TURN_DEFAULT = gettext_noop("The model did not answer that turn (%(reason)s).")
BUDGET_WARNING_MESSAGE = gettext_noop(
    "You have used %(used)s of your %(limit)s tokens for today. At the limit the session ends."
)
STORAGE_START_MESSAGE = gettext_noop(
    "The server cannot reach its database right now, so no session can start."
    " Try again in a minute."
)


class SessionFailed(Exception):
    """The session could not start; its row is stored as failed with ``end_reason``."""

    def __init__(self, failure: ModelFailure, *, end_reason: str) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.end_reason = end_reason


class Browser(Protocol):
    """What a conversation needs from the browser connection."""

    async def send_text(self, text: str) -> None:
        """Send a JSON control message."""

    async def send_media(self, data: bytes) -> None:
        """Send a binary media frame."""

    async def session_ended(self, session_id: uuid.UUID, close_code: int | None) -> None:
        """The session is over; close the socket with ``close_code`` if one is given."""


# The conversations live in this process, for the per-worker limit and for shutdown.
_live: set["Conversation"] = set()


def live_conversations() -> list["Conversation"]:
    """The conversations this process holds now (a diagnostic hook: tests inspect them)."""
    return list(_live)


class Conversation:
    """Relays one session and records it."""

    def __init__(self, *, session: LiveSession, browser: Browser, limits: SessionLimits) -> None:
        self.session_id = session.id
        self.user_id = session.user_id
        self.browser = browser
        self.limits = limits
        self.recorder = SessionRecorder(
            session.id,
            max_unsaved=limits.max_unsaved_lines,
            retry_cap_s=limits.storage_retry_s,
            on_overflow=self._storage_overflow,
        )
        self._storage_end: asyncio.Task[None] | None = None
        self.outbox = SpeechOutbox(
            send=self._send_speech,
            limits=OutboxLimits(limits.downstream_window_s, limits.downstream_buffer_s),
            session_id=session.id,
        )
        self.relay: LiveRelay | None = None
        self.model = model_info(session.model)
        self.text_mode = session.response_modality == LiveSession.Modality.TEXT
        self.tools = tools.ToolRunner(
            session_id=session.id,
            user_id=session.user_id,
            respond=self._tool_response,
            show=browser.send_text,
            non_blocking=self.model.tool_behaviour is ToolBehaviour.NON_BLOCKING,
        )
        self.prices: Prices | None = None  # the model's rates, read at start (None: no price)
        self.budget: DailyBudget | None = None  # read at start
        self.push_to_talk = False  # chosen at start: activity start/end, no automatic detection
        self._holding = False  # push-to-talk: between the browser's activity_start and end
        self._interrupted = False  # the turn in progress was cut off; turnComplete closes it
        self._spoke = False  # model audio went to the browser in the turn in progress
        self._ended = False
        self._went_live = False  # counted as live in the metrics
        loop = asyncio.get_running_loop()
        self._started_at = self._active_at = loop.time()
        self._watchdog: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        *,
        user: User,
        start: protocol.Start,
        user_agent: str,
        browser: Browser,
        limits: SessionLimits,
    ) -> "Conversation":
        """Create the session row and connect upstream.

        Raises SessionRefused past a limit and SessionFailed if the session cannot be
        opened; both are stored on the session row.
        """
        config = LiveConfig.from_settings()
        refuse = None
        if limits.max_per_worker and len(_live) >= limits.max_per_worker:
            refuse = services.SessionRefused(
                EndReason.WORKER_LIMIT,
                gettext_noop("This server is at capacity right now. Try again in a minute."),
            )
        try:
            session = await database_sync_to_async(services.live_session_create)(
                user=user,
                model=config.model,
                modality=start.modality,
                voice=start.voice,
                user_agent=user_agent,
                max_per_user=limits.max_per_user,
                stale_after_s=limits.stale_after_s,
                daily_tokens=limits.daily_tokens,
                refuse=refuse,
            )
        except DatabaseError as exc:
            logger.warning("A session could not start: the database is unreachable (%s)", exc)
            raise protocol.ClientError(STORAGE_CODE, STORAGE_START_MESSAGE) from exc
        conversation = cls(session=session, browser=browser, limits=limits)
        _live.add(conversation)
        try:
            await conversation._open(start, config)
        except BaseException:
            _live.discard(conversation)
            raise
        return conversation

    async def _open(self, start: protocol.Start, config: LiveConfig) -> None:
        """Connect upstream and start the watchdog; a failure ends the row (SessionFailed)."""
        await self.browser.send_text(
            encode(Status(state="connecting", session_id=str(self.session_id)))
        )
        self.push_to_talk = start.push_to_talk
        try:
            self.prices = prices_for(self.model.id)  # ImproperlyConfigured if malformed
            self.budget = await DailyBudget.load(
                user_id=self.user_id, session_id=self.session_id, default=self.limits.daily_tokens
            )
            endpoint = await asyncio.to_thread(endpoint_for, config)
            relay = self._new_relay(start, config, endpoint)
            await relay.open()
        except UpstreamUnavailable as exc:
            failure = model_failure(exc.code, exc.reason, model=self.model.id, during=AT_SETUP)
            await self._fail_to_open(failure, EndReason.UPSTREAM_UNAVAILABLE, detail=str(exc))
        except ImproperlyConfigured as exc:
            failure = ModelFailure(INTERNAL, MISCONFIGURED_MESSAGE, str(exc))
            await self._fail_to_open(failure, EndReason.INTERNAL_ERROR, detail=str(exc))
        except Exception as exc:
            logger.exception("Session %s could not be opened", self.session_id)
            failure = ModelFailure(INTERNAL, INTERNAL_ERROR_MESSAGE, repr(exc))
            await self._fail_to_open(failure, EndReason.INTERNAL_ERROR, detail=repr(exc))
        self.relay = relay
        self._went_live = True
        metrics.session_live()
        self._watchdog = asyncio.create_task(self._watch(), name="session-watchdog")
        log_event(
            "session_start", session_id=self.session_id, user_id=self.user_id,
            modality=start.modality,
        )  # fmt: skip
        await self.browser.send_text(
            encode(
                Status(
                    state="live",
                    session_id=str(self.session_id),
                    mode=start.modality.lower(),
                    voice=start.voice,
                    model=self.model.id,
                    offline_demo=endpoint.offline_demo,
                )
            )
        )

    def _new_relay(
        self, start: protocol.Start, config: LiveConfig, endpoint: Endpoint
    ) -> LiveRelay:
        """The relay of this session, as the browser's start and the settings ask."""
        return LiveRelay(
            client=build_client(endpoint),
            model=self.model.id,
            config=build_connect_config(
                config,
                voice=start.voice,
                model=self.model,
                functions=tools.registry.specs(),
                push_to_talk=start.push_to_talk,
                language=start.language,
            ),
            on_event=self.on_event,
            connect_timeout=config.connect_timeout_s,
            resilience=resilience_for(config),
            history=self.recorder.recent_history,
            tool_calls_block=not self.tools.non_blocking,
            observer=metrics.RelayMetrics(),
        )

    async def _fail_to_open(self, failure: ModelFailure, end_reason: str, *, detail: str) -> None:
        """Store the session as failed, log why for the operator, and raise SessionFailed."""
        logger.warning("Session %s: %s", self.session_id, failure.operator)
        log_event(
            "session_error", session_id=self.session_id, user_id=self.user_id,
            reason=end_reason, error=detail, upstream_code=failure.upstream_code,
            level=logging.WARNING,
        )  # fmt: skip
        self._ended = True
        metrics.session_ended(end_reason, was_live=False)
        await self.tools.close()
        await self.recorder.finish(status=ending(end_reason).status, end_reason=end_reason)
        raise SessionFailed(failure, end_reason=end_reason)

    async def audio(self, chunk: protocol.AudioChunk) -> None:
        """Relay microphone audio."""
        self._touch()
        relay = self._relay()
        self.recorder.counters.audio_seconds_in += chunk.seconds
        metrics.audio(chunk.seconds, direction="in")
        await relay.send_audio(chunk.pcm)

    async def frame(self, frame: protocol.Frame) -> None:
        """Relay a screen frame."""
        self._touch()
        relay = self._relay()
        self.recorder.counters.frames_received += 1
        metrics.frame(sent=True)
        await relay.send_frame(frame.data, frame.mime_type)

    async def text(self, message: protocol.TypedText) -> None:
        """Record and relay a typed message."""
        self._touch()
        relay = self._relay()
        self.recorder.typed(message.text)
        await self.browser.send_text(
            encode(Transcript(role=Role.USER, source=Source.TYPED, text=message.text, final=True))
        )
        await relay.send_text(message.text)

    async def ack(self, ack: protocol.Ack) -> None:
        """The browser received this many model audio frames: send what the window allows."""
        await self.outbox.ack(ack.audio)

    async def _send_speech(self, pcm: bytes) -> None:
        """Send a chunk of model speech the outbox let through."""
        await self.browser.send_media(encode_audio(pcm))

    async def audio_end(self) -> None:
        """The microphone stopped: let the model answer what it has heard.

        With push-to-talk the service takes no ``audio_stream_end`` (automatic activity
        detection is off): the activity end says it instead, so this one is refused.
        """
        relay = self._relay()
        if self.push_to_talk:
            raise protocol.ProtocolError(
                MIC_MODE_CODE, "With push-to-talk on, send activity_end instead of audio_end."
            )
        await relay.send_audio_end()

    async def activity_start(self) -> None:
        """Push-to-talk: the user holds the talk button; a second start is ignored."""
        relay = self._push_to_talk_relay("activity_start")
        self._touch()
        if not self._holding:
            self._holding = True
            await relay.send_activity_start()

    async def activity_end(self) -> None:
        """Push-to-talk: the user let go; the model answers. An end without a start is ignored."""
        relay = self._push_to_talk_relay("activity_end")
        self._touch()
        if self._holding:
            self._holding = False
            await relay.send_activity_end()

    def _push_to_talk_relay(self, what: str) -> LiveRelay:
        """The open relay, for an activity signal: only a push-to-talk session takes one."""
        relay = self._relay()
        if not self.push_to_talk:
            raise protocol.ProtocolError(
                MIC_MODE_CODE,
                f"This session was started without push-to-talk: {what} is not accepted"
                ' (start with "push_to_talk": true).',
            )
        return relay

    async def end(self, reason: str, *, message: str = "") -> None:
        """Close upstream, store the rest of the transcript and mark the session finished.

        Status, close code and whether the browser is told follow from ``reason``
        (endings.ENDINGS); ``message`` says more than the table's sentence. Idempotent.
        """
        if self._ended:
            return
        self._ended = True
        metrics.session_ended(reason, was_live=self._went_live)
        self.outbox.close()
        how = ending(reason)
        status = how.status
        _live.discard(self)
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            await cancel_and_wait(watchdog)
        await self.tools.close()
        if self.relay is not None:
            await self.relay.close()
        # With the database away the browser is told at once; the writer stores the rest
        # in the background when it returns. A shutdown tries once more before the
        # process goes.
        wait = reason == EndReason.SERVER_SHUTDOWN or (
            reason != EndReason.STORAGE_UNAVAILABLE and not self.recorder.storage_down
        )
        await self.recorder.finish(status=status, end_reason=reason, wait=wait)
        log_event(
            "session_end", session_id=self.session_id, user_id=self.user_id, status=status,
            reason=reason, resumptions=self.recorder.counters.resumptions,
        )  # fmt: skip
        if how.notify:
            ended = Status(
                state="ended",
                session_id=str(self.session_id),
                reason=reason,
                message=message or how.message or None,
            )
            with contextlib.suppress(Exception):  # the browser may already be gone
                await self.browser.send_text(encode(ended))
        await self.browser.session_ended(self.session_id, how.close_code)

    async def on_event(self, event: events.LiveEvent) -> None:
        """Apply one upstream event; an error doing so ends the session, never the worker."""
        if self._ended:
            return
        try:
            await self._apply(event)
        except Exception:
            logger.exception("Session %s: handling %s failed", self.session_id, type(event))
            await self.fail(INTERNAL_ERROR_MESSAGE)

    async def _apply(self, event: events.LiveEvent) -> None:
        """Record one upstream event and tell the browser."""
        match event:
            case events.AudioOut(data=data):
                seconds = len(data) / OUTPUT_BYTES_PER_SECOND
                self.recorder.counters.audio_seconds_out += seconds
                metrics.audio(seconds, direction="out")
                if not self.text_mode:  # text mode shows the transcription instead
                    self._spoke = True
                    await self.outbox.push(data)  # held or dropped for a slow browser
                    self.recorder.counters.speech_dropped_s = self.outbox.dropped_s
            case events.InputTranscript(text=text):
                await self._fragment(Role.USER, Source.SPEECH, text)
            case events.OutputTranscript(text=text) | events.TextOut(text=text):
                source = Source.TEXT_REPLY if self.text_mode else Source.SPEECH
                await self._fragment(Role.MODEL, source, text)
            case events.Interrupted():
                await self._interrupt()
            case events.TurnComplete(in_progress=False, reason=reason):
                await self._turn_ended(reason)
            case events.Usage():
                await self._usage(event)
            case events.ToolCall(calls=calls):
                for call in calls:
                    self.tools.start(call)
            case events.ToolCallCancellation(ids=ids):
                self._cancel_tool_calls(ids)
            case events.UpstreamClosed(internal=True):
                await self.fail(INTERNAL_ERROR_MESSAGE)
            case events.UpstreamClosed(error=error, code=code, reason=reason):
                await self._upstream_closed(error, code, reason)
            case events.Reconnecting(error=error):
                await self._reconnecting(error)
            case events.Resumed(how=how):
                await self._resumed(how)
            case _:  # goAway, handles, a turn still in progress: the relay's business
                logger.debug("Session %s: %s", self.session_id, event)

    async def _fragment(self, role: str, source: str, text: str) -> None:
        """Record a fragment and show it live (what the line's length cap kept of it)."""
        turn = self.recorder.turns.turn
        text = self.recorder.fragment(role=role, source=source, text=text)
        if not text:
            return
        await self.browser.send_text(
            encode(Transcript(role=role, source=source, text=text, turn=turn))
        )

    async def _interrupt(self) -> None:
        """The reply stops here: the browser drops queued audio; turnComplete ends the turn.

        A turn that has shown nothing yet (say, a reply waiting on a tool call) has nothing
        to cut: it is not reported.
        """
        if self._interrupted or not (self._spoke or self.recorder.turns.pending):
            return
        self._interrupted = True
        self.outbox.clear()  # the cut-off reply's speech still waiting is never sent
        await self.browser.send_text(encode(Interrupted(turn=self.recorder.turns.turn)))

    async def _turn_ended(self, reason: str | None = None) -> None:
        """Store the turn's lines and tell the browser; an empty, unremarkable turn is no turn."""
        interrupted, self._interrupted = self._interrupted, False
        self._spoke = False
        if not (self.recorder.turns.pending or interrupted or reason):
            return
        turn = self.recorder.turns.turn
        self.recorder.complete_turn()
        message = None
        if reason:
            message = REFUSED_TURN_MESSAGES.get(reason) or (
                gettext(REFUSED_TURN_DEFAULT) % {"reason": reason}
            )
            log_event(
                "turn_refused", session_id=self.session_id, user_id=self.user_id, turn=turn,
                reason=reason,
            )  # fmt: skip
        done = TurnComplete(
            turn=turn, interrupted=interrupted or None, reason=reason or None, message=message
        )
        await self.browser.send_text(encode(done))

    async def _usage(self, usage: events.Usage) -> None:
        """Add up token usage, show the session's totals and cost, and hold to the budget."""
        counters = self.recorder.counters
        counters.add_usage(
            prompt=usage.prompt_tokens,
            response=usage.response_tokens,
            total=usage.total_tokens,
            prompt_by_modality=usage.prompt_by_modality,
            response_by_modality=usage.response_by_modality,
            thoughts=usage.thoughts_tokens,
            tool_use=usage.tool_use_prompt_tokens,
            tool_use_by_modality=usage.tool_use_by_modality,
        )
        before = counters.cost_usd or 0
        counters.price(self.prices)
        metrics.cost(float((counters.cost_usd or 0) - before))
        self.recorder.counters_changed()
        metrics.tokens("in", usage.prompt_by_modality, usage.prompt_tokens)
        metrics.tokens("in", usage.tool_use_by_modality, usage.tool_use_prompt_tokens)
        metrics.tokens("out", usage.response_by_modality, usage.response_tokens)
        metrics.tokens("out", {"THOUGHTS": usage.thoughts_tokens}, usage.thoughts_tokens)
        await self.browser.send_text(encode(usage_message(counters)))
        await self._hold_to_budget()

    async def _hold_to_budget(self) -> None:
        """Warn once near the user's daily budget; end the session at it."""
        budget = self.budget
        if budget is None or not budget.limit:
            return
        await budget.refresh()
        own = self.recorder.counters.total_tokens
        verdict = budget.verdict(own)
        if verdict is Verdict.GO_ON:
            return
        log_event(
            "budget_" + verdict.value, session_id=self.session_id, user_id=self.user_id,
            used=budget.used(own), limit=budget.limit,
        )  # fmt: skip
        if verdict is Verdict.END:
            await self.end(EndReason.BUDGET_EXHAUSTED)
            return
        said = gettext(BUDGET_WARNING_MESSAGE) % {
            "used": f"{budget.used(own):,}",
            "limit": f"{budget.limit:,}",
        }
        await self.browser.send_text(encode(error_message(protocol.ErrorCode.BUDGET_WARNING, said)))

    async def _tool_response(self, response: FunctionResult) -> None:
        """Send a tool call's response upstream, through the relay's queue."""
        await self._relay().send_tool_response([response])

    def _cancel_tool_calls(self, ids: Sequence[str]) -> None:
        """The model withdrew tool calls: stop those still running, answer none of them."""
        cancelled = self.tools.cancel(ids)
        log_event(
            "tool_calls_cancelled", session_id=self.session_id, user_id=self.user_id,
            asked=len(ids), running=len(cancelled),
        )  # fmt: skip

    async def _reconnecting(self, error: str | None) -> None:
        """The model connection was lost: end the turn it cut off and say we resume."""
        log_event(
            "session_reconnecting", session_id=self.session_id, user_id=self.user_id,
            error=error or "closed", level=logging.WARNING,
        )  # fmt: skip
        if self.recorder.turns.pending or self._interrupted:
            await self._interrupt()
            await self._turn_ended()
        await self.browser.send_text(
            encode(Status(state="reconnecting", session_id=str(self.session_id)))
        )

    async def _resumed(self, how: str) -> None:
        """The conversation goes on over a new model connection."""
        self.recorder.counters.resumptions += 1
        metrics.resumed(how)
        log_event(
            "session_resumed", session_id=self.session_id, user_id=self.user_id, how=how,
            count=self.recorder.counters.resumptions,
        )  # fmt: skip
        state = {"reconnect": "resumed", "fresh": "restarted"}.get(how, "handed_over")
        await self.browser.send_text(encode(Status(state=state, session_id=str(self.session_id))))

    async def _upstream_closed(self, error: str | None, code: int | None, reason: str) -> None:
        """The model connection is gone for good: end the session and tell the browser."""
        if error is None:
            await self.end(EndReason.UPSTREAM_CLOSED)
            return
        failure = model_failure(code, reason, model=self.model.id, during=MID_SESSION)
        logger.warning("Session %s: %s %s", self.session_id, failure.operator, error)
        log_event(
            "session_error", session_id=self.session_id, user_id=self.user_id, error=error,
            upstream_code=code, level=logging.WARNING,
        )  # fmt: skip
        await self.browser.send_text(
            encode(
                error_message(
                    failure.error_code, failure.message, **failure.details(), detail=error
                )
            )
        )
        await self.end(EndReason.UPSTREAM_ERROR)

    async def fail(self, message: str) -> None:
        """End the session after an error in the server: stored failed, the socket closed."""
        if self._ended:
            return
        log_event(
            "session_error", session_id=self.session_id, user_id=self.user_id,
            reason=EndReason.INTERNAL_ERROR, level=logging.ERROR,
        )  # fmt: skip
        with contextlib.suppress(Exception):  # the browser may be what failed
            await self.browser.send_text(
                encode(error_message(protocol.ErrorCode.INTERNAL_ERROR, message))
            )
        await self.end(EndReason.INTERNAL_ERROR, message=message)

    def _touch(self) -> None:
        """The browser sent media or text: the session is not idle."""
        self._active_at = asyncio.get_running_loop().time()

    async def _watch(self) -> None:
        """Stamp the heartbeat and end the session at its duration or idle limit."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + limits.heartbeat_s
        while True:
            deadlines = [next_beat]
            if limits.max_session_s:
                deadlines.append(self._started_at + limits.max_session_s)
            if limits.idle_timeout_s:
                deadlines.append(self._active_at + limits.idle_timeout_s)
            await asyncio.sleep(max(0.0, min(deadlines) - loop.time()))
            now = loop.time()
            if limits.max_session_s and now >= self._started_at + limits.max_session_s:
                minutes = limits.max_session_s / 60
                await self.end(
                    EndReason.DURATION_LIMIT,
                    message=gettext(
                        "The session reached its maximum length of %(minutes)s minutes."
                    )
                    % {"minutes": f"{minutes:g}"},
                )
                return
            if limits.idle_timeout_s and now >= self._active_at + limits.idle_timeout_s:
                await self.end(
                    EndReason.IDLE_TIMEOUT,
                    message=(
                        gettext(
                            "The session ended after %(seconds)s seconds"
                            " without screen, audio or text."
                        )
                        % {"seconds": f"{limits.idle_timeout_s:g}"}
                    ),
                )
                return
            if now >= next_beat:
                next_beat = now + await self._heartbeat()

    async def _heartbeat(self) -> float:
        """Stamp the row; the seconds until the next stamp (soon again if it failed)."""
        try:
            await database_sync_to_async(services.live_session_heartbeat)(
                session_id=self.session_id
            )
        except DatabaseError:
            return min(self.limits.heartbeat_s, HEARTBEAT_RETRY_S)
        return self.limits.heartbeat_s

    def _storage_overflow(self) -> None:
        """Too many lines wait for the database: end as storage_unavailable, not drop them."""
        if self._ended or self._storage_end is not None:
            return
        self._storage_end = asyncio.create_task(
            self.end(EndReason.STORAGE_UNAVAILABLE), name="storage-unavailable-end"
        )

    def _relay(self) -> LiveRelay:
        """The open relay."""
        if self.relay is None or self._ended:
            raise protocol.ProtocolError(protocol.ErrorCode.NOT_STARTED, "No live session.")
        return self.relay

    @property
    def ended(self) -> bool:
        """Whether the session has ended."""
        return self._ended
