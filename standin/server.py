"""An offline stand-in for the Gemini Live ``BidiGenerateContent`` WebSocket service.

It speaks the wire protocol of the google-genai SDK over TLS, records everything each
client sends in a :class:`Connection` and answers with deterministic, synthetic model
turns (see :class:`LiveConnectionHandler`), as today's service does: it serves only the
current model ids (:mod:`standin.profiles`; a retired or unknown one is closed with 1008),
in AUDIO only, and holds each setup to what its model accepts (:mod:`standin.setup`).
It does not import Django: it also runs standalone.

This module listens, checks handshakes, keeps the records, the session resumption
handles (:mod:`standin.handles`) and the pending function calls, and lets a test script
faults: goAway, closes with any code, a deadline that expires a conversation's handles,
unknown message kinds and raw (malformed) frames, dropped connections; refusals, delays
and mid-reply faults are :class:`Behaviour` settings. It also calls functions and checks
the responses (``call_tool``, ``wait_for_tool_response``). The protocol itself lives in
:mod:`standin.session`, the records in :mod:`standin.records` (kept by
:mod:`standin.recorder`), the handshake checks in :mod:`standin.handshake`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from standin.handles import HandleBook
from standin.handshake import check_path, redact_headers, wire_logger
from standin.probe import Probe
from standin.protocol import DEADLINE_REASON, INTERNAL_ERROR, cut_reason
from standin.recorder import Recorder, predicate_holds
from standin.records import Behaviour, Connection, ModelContext, PendingCall
from standin.session import LiveConnectionHandler
from standin.tls import TlsFiles, ensure_tls_files

__all__ = ["DEFAULT_RECORD_LIMIT", "UNKNOWN_KIND", "StandIn", "predicate_holds"]

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 2**20
DEFAULT_RECORD_LIMIT = 16 * 2**20
UNKNOWN_KIND = "sessionWarning"  # a server message kind google-genai 3.6.1 does not know
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised, never bound here


class StandIn(Recorder):
    """The stand-in server; ``async with StandIn() as standin:`` serves on a free port.

    ``record_limit_bytes`` and ``keep_closed_records`` bound the media kept
    (:class:`Recorder`).

    ``handles`` keeps every handle sent (the newest ``MAX_RESUMPTION_HANDLES``) with its
    connection, conversation, time and whether it is resumable; ``resumption_handles``
    maps each to the :class:`ModelContext` a setup naming it resumes from.
    ``pending_tool_calls`` maps the id of each call the model made and awaits a response
    to (on any connection) to its :class:`PendingCall`.
    """

    def __init__(
        self,
        *,
        behaviour: Behaviour | None = None,
        tls_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_hosts: Sequence[str] = (),
        record_limit_bytes: int | None = DEFAULT_RECORD_LIMIT,
        keep_closed_records: int | None = 8,
    ) -> None:
        super().__init__(record_limit_bytes, keep_closed_records)
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.host = host
        self.handles = HandleBook()
        self.pending_tool_calls: dict[str, PendingCall] = {}
        self.probe = Probe()
        self._call_ids = 0
        self._port = port
        self._cert_hosts = tuple(cert_hosts)
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TlsFiles | None = None
        self._server: Server | None = None
        self._sessions: dict[int, LiveConnectionHandler] = {}

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def resumption_handles(self) -> dict[str, ModelContext]:
        """Every handle sent, with the context a setup naming it resumes from."""
        return self.handles.contexts()

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._server is None:
            raise RuntimeError("The stand-in is not started.")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give the SDK's ``HttpOptions``."""
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        """PEM of the CA that signed the server certificate."""
        if self._tls is None:
            raise RuntimeError("The stand-in is not started.")
        return self._tls.ca_path

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client SSL context trusting the stand-in's CA."""
        if self._tls is None:
            raise RuntimeError("The stand-in is not started.")
        return self._tls.client_context()

    async def start(self) -> None:
        """Write fresh TLS files and start listening."""
        if self._server is not None:
            raise RuntimeError("The stand-in is already started.")
        directory = self._tls_dir
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="standin-tls-")
            directory = Path(self._tempdir.name)
        extra = [self.host] if self.host not in WILDCARD_HOSTS else []
        try:
            self._tls = ensure_tls_files(directory, [*extra, *self._cert_hosts])
            self._server = await serve(
                self._handle, self.host, self._port, ssl=self._tls.server_context(),
                process_request=check_path, max_size=MAX_MESSAGE_BYTES,
                logger=wire_logger,
            )  # fmt: skip
        except BaseException:
            self._remove_tempdir()
            raise
        logger.info("Gemini Live stand-in listening on %s", self.base_url)

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            logger.info("Gemini Live stand-in stopped")
        self._remove_tempdir()

    def _remove_tempdir(self) -> None:
        """Delete the TLS directory the stand-in created itself, if any."""
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def push(self, message: dict[str, Any], *, connection: int = -1) -> None:
        """Send a raw (camelCase) server message on a live connection."""
        await self._session(connection).send(json.loads(json.dumps(message)))

    async def push_unknown(
        self, kind: str = UNKNOWN_KIND, body: dict[str, Any] | None = None, *, connection: int = -1
    ) -> None:
        """Send a message whose only key is ``kind``, one the SDK does not know (a new kind)."""
        await self.push({kind: body if body is not None else {}}, connection=connection)

    async def push_raw(self, text: str, *, connection: int = -1) -> None:
        """Send a text frame exactly as given, malformed JSON included."""
        await self._session(connection).send(text)

    async def interrupt(self, *, connection: int = -1) -> None:
        """Cut the reply playing: ``interrupted``, then turnComplete (with usage) for it."""
        await self._session(connection).interrupt()

    async def disconnect(self, *, connection: int = -1, code: int = 1000, reason: str = "") -> None:
        """Close a live connection with ``code`` and ``reason`` (cut to 123 bytes)."""
        await self._session(connection).ws.close(code, cut_reason(reason))

    async def deadline_expire(self, *, connection: int = -1) -> None:
        """Close with 1011 "Deadline expired..." and expire every handle of its conversation."""
        record = self.connections[connection]
        session = self._session(connection)
        conversation = record.conversation if record.conversation is not None else record.index
        self.handles.expire_conversation(conversation)
        await session.ws.close(INTERNAL_ERROR, DEADLINE_REASON)
        self.handles.expire_conversation(conversation)  # and any sent while closing

    async def go_away(self, time_left: float, *, connection: int = -1, close: bool = True) -> None:
        """Send ``goAway`` (``timeLeft`` as a Duration); with ``close``, close with 1000 then."""
        await self._session(connection).go_away(time_left, close=close)

    async def abort(self, *, connection: int = -1, timeout: float = 5.0) -> None:
        """Drop a live connection's TCP stream without a close frame and wait until it ended."""
        record = self.connections[connection]
        self._session(connection).abort()
        await self.wait_for(lambda: record.closed, timeout)

    def abort_mid_turn(self, *, connection: int = -1, after_messages: int = 1) -> None:
        """Drop a connection once its current or next reply turn has sent ``after_messages``."""
        self._session(connection).abort_mid_turn(after_messages)

    async def call_tool(
        self,
        name: str,
        args: dict[str, Any],
        *,
        call_id: str | None = None,
        connection: int = -1,
    ) -> str:
        """Make the model call a function now: send ``toolCall``; return the call's id.

        A session resumption handle (``resumable: false``) follows the call. The response
        (on whichever connection it comes) is recorded and answered as the call's
        behaviour (the declaration's or the model's default) and scheduling say.
        """
        call_id = call_id or self.new_call_id()
        args = json.loads(json.dumps(args))
        await self._session(connection).call_tool(name, args, call_id)
        return call_id

    async def cancel_tool_calls(self, ids: Sequence[str], *, connection: int = -1) -> None:
        """Send ``toolCallCancellation`` for ``ids``; a late response gets no reply turn."""
        await self._session(connection).cancel_tool_calls(list(ids))

    def tool_responses(self, call_id: str) -> list[tuple[int, dict[str, Any]]]:
        """Every function response to ``call_id`` as (connection index, response)."""
        return [
            (record.index, response)
            for record in self.connections
            for response in record.tool_responses
            if isinstance(response, dict) and response.get("id") == call_id
        ]

    async def wait_for_tool_response(self, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first function response to ``call_id``, on any connection, once it came."""
        await self.wait_for(lambda: bool(self.tool_responses(call_id)), timeout)
        return self.tool_responses(call_id)[0][1]

    def new_call_id(self) -> str:
        """A function call id not used before on this server."""
        self._call_ids += 1
        return f"call-{self._call_ids}"

    def remember_tool_call(self, call: PendingCall) -> None:
        """A call the model made and awaits a response to (on any connection)."""
        self.pending_tool_calls[call.call_id] = call

    def take_tool_call(self, call_id: str) -> PendingCall | None:
        """Forget a pending call and return it; None if it is not pending."""
        return self.pending_tool_calls.pop(call_id, None)

    def has_pending_calls(self, conversation: int) -> bool:
        """Whether a call made in ``conversation`` awaits its response."""
        return any(call.conversation == conversation for call in self.pending_tool_calls.values())

    def lookup_handle(self, handle: str) -> ModelContext | None:
        """The context ``handle`` resumes, or None for a handle never sent."""
        issued = self.handles.issued.get(handle)
        return issued.context if issued is not None else None

    def _session(self, index: int) -> LiveConnectionHandler:
        """The live session of connection ``index`` (negative counts from the end)."""
        record = self.connections[index]
        session = self._sessions.get(record.index)
        if session is None:
            raise RuntimeError(f"Connection #{record.index} is closed.")
        return session

    async def _handle(self, ws: ServerConnection) -> None:
        """Serve one connection from setup to close."""
        request = ws.request
        assert request is not None  # noqa: S101 - set before the handler runs
        loop = asyncio.get_running_loop()
        record = Connection(
            index=len(self.connections), path=request.path,
            headers=redact_headers(request.headers),
            had_api_key=bool(request.headers.get("x-goog-api-key")), opened_at=loop.time(),
        )  # fmt: skip
        self.connections.append(record)
        session = self._sessions[record.index] = LiveConnectionHandler(self, ws, record)
        logger.info("Connection #%s opened (api key: %s)", record.index, record.had_api_key)
        self.notify()
        try:
            await session.run()
        finally:
            await session.shutdown()
            del self._sessions[record.index]
            record.closed, record.close_code = True, ws.close_code
            record.closed_at = loop.time()
            record.close_reason = ws.close_reason or ""
            self._forget_old(record)
            logger.info("Connection #%s closed (%s)", record.index, record.close_code)
            self.notify()
