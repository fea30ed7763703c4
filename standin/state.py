"""What the parts of one stand-in connection share, and how every turn of it ends.

:class:`SessionState` holds the connection's record, its :class:`Speaker` and
:class:`Listener`, the accepted :class:`SessionConfig`, its conversation (the first
connection of its resumption chain) and turn count. A turn takes its prompt (the billed
context, compressed first if the setup asks: :mod:`standin.billing`) as it starts to run,
and ends with a turnComplete that carries usage; its reply audio then joins the context,
and a session resumption handle follows when the client asked for them:
``resumable: false`` while a function call made in the conversation is pending.
"""

from __future__ import annotations

import logging
from typing import Protocol

from websockets.asyncio.server import ServerConnection

from standin import probe
from standin.handles import HandleBook, IssuedHandle
from standin.listener import Listener
from standin.protocol import Outgoing, content, now
from standin.records import Behaviour, Connection, PendingCall
from standin.setup import SessionConfig
from standin.speaker import Speaker
from standin.turns import Turn, turn_complete, usage

logger = logging.getLogger(__name__)


class HandlerHost(Protocol):
    """What a connection handler needs from its server (``StandIn`` provides it)."""

    probe: probe.Probe
    behaviour: Behaviour
    handles: HandleBook

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""

    def is_open(self, connection: int) -> bool:
        """Whether connection ``connection`` has not closed yet."""

    def new_call_id(self) -> str:
        """A function call id not used before on this server."""

    def remember_tool_call(self, call: PendingCall) -> None:
        """A call the model made and awaits a response to (on any connection)."""

    def take_tool_call(self, call_id: str) -> PendingCall | None:
        """Forget a pending call and return it; None if it is not pending."""

    def has_pending_calls(self, conversation: int) -> bool:
        """Whether a call made in ``conversation`` awaits its response."""


class SessionState:
    """One connection's shared state: its record, speaker, listener, config and turn count."""

    def __init__(self, host: HandlerHost, ws: ServerConnection, record: Connection) -> None:
        self.host, self.ws, self.record = host, ws, record
        self.speaker = Speaker(host, ws, record)
        self.listener = Listener(host)
        self.config: SessionConfig | None = None
        self.conversation = record.index
        self.turns_done = 0

    @property
    def behaviour(self) -> Behaviour:
        """The server's live behaviour."""
        return self.host.behaviour

    def resumption_update(self) -> list[Outgoing]:
        """A sessionResumptionUpdate with a new handle for the current context, if wanted."""
        config = self.config
        if config is None or not (config.resumable and self.behaviour.resumption_updates):
            return []
        resumable = not self.host.has_pending_calls(self.conversation)
        issued = IssuedHandle(
            handle="", connection=self.record.index, conversation=self.conversation,
            issued_at=now(), context=self.listener.context(self.turns_done), resumable=resumable,
        )  # fmt: skip
        handle = self.host.handles.issue(f"standin-{self.record.index}-{self.turns_done}", issued)
        return [{"sessionResumptionUpdate": {"newHandle": handle, "resumable": resumable}}]

    def open_turn(self, turn: Turn) -> None:
        """Before a turn runs: compress the context if the setup asks, and take its prompt."""
        if turn.prompt is None:
            turn.prompt = self.listener.ledger.before_turn()

    def final(self, turn: Turn, reason: str | None = None) -> list[Outgoing]:
        """A turn's final turnComplete with usage, and the handle after it; counts the turn.

        The reply audio the turn sent joins the context before the handle is taken.
        """
        self.turns_done += 1
        self.open_turn(turn)
        spent = usage(turn, self.behaviour, self.record.profile)
        self.listener.ledger.add_audio(turn.audio_s)
        return [turn_complete(self.record.profile, spent, reason), *self.resumption_update()]

    async def send_all(self, messages: list[Outgoing]) -> None:
        """Send ``messages`` together, outside any turn."""
        async with self.speaker.lock:
            for message in messages:
                await self.speaker.send_unlocked(message)

    async def announce_if_resumable(self) -> None:
        """A pending call was settled with no reply turn: say so with a handle, if resumable."""
        if not self.host.has_pending_calls(self.conversation):
            await self.send_all(self.resumption_update())

    async def cut_playing(self) -> None:
        """Interrupt the turn playing, if one is (a barge-in, an INTERRUPT response)."""
        async with self.speaker.lock:
            turn = self.speaker.playing()
            if turn is not None:
                await self.interrupt_unlocked(turn)

    async def interrupt_unlocked(self, turn: Turn | None) -> None:
        """Cancel ``turn``: send interrupted, its late input transcription, its turnComplete."""
        if turn is not None:
            turn.cancelled = True
            turn.wake.set()
        logger.info("Connection #%s: interrupted (turn playing: %s)", self.record.index, bool(turn))
        cut = turn if turn is not None else Turn("", "AUDIO")
        for message in [content(interrupted=True), *cut.late, *self.final(cut)]:
            await self.speaker.send_unlocked(message)
        cut.late = []
