"""An offline stand-in for the Gemini Live ``BidiGenerateContent`` WebSocket service.

It speaks the wire protocol of the google-genai SDK over TLS, records everything each
client sends in a :class:`Connection` and answers with deterministic, synthetic model
turns (see :class:`LiveConnectionHandler`). It does not import Django: it also runs standalone.

This module listens, checks handshakes, keeps the records and the session resumption
handles, and lets a test script faults (goAway, dropped connections; refusals and
delays are :class:`Behaviour` settings), and call functions and check the responses
(``call_tool``, ``wait_for_tool_response``). The protocol itself lives
in :mod:`standin.session`, the records in
:mod:`standin.records`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import tempfile
from collections.abc import Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from standin.probe import Probe
from standin.records import Behaviour, Connection, ModelContext
from standin.session import LiveConnectionHandler
from standin.tls import TlsFiles, ensure_tls_files

logger = logging.getLogger(__name__)

PATH_RE = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.[\w.-]+\.GenerativeService"
    r"\.BidiGenerateContent(?:Constrained)?$"
)
SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})
REDACTED = "<redacted>"
MAX_MESSAGE_BYTES = 16 * 2**20
DEFAULT_RECORD_LIMIT = 16 * 2**20
MAX_RESUMPTION_HANDLES = 1000
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised, never bound here


def redact_headers(headers: Headers) -> dict[str, str]:
    """Request headers with lower-case names and credentials replaced."""
    result: dict[str, str] = {}
    for name, value in headers.raw_items():
        key = name.lower()
        shown = REDACTED if key in SECRET_HEADERS else value
        result[key] = f"{result[key]}, {shown}" if key in result else shown
    return result


class _RedactSecrets(logging.Filter):
    """Hide credential header values in websockets' debug log of the handshake."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``< name: value`` records whose name is a secret header."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], REDACTED)
        return True


_wire_logger = logging.getLogger(f"{__name__}.websockets")
_wire_logger.addFilter(_RedactSecrets())


class StandIn:
    """The stand-in server; ``async with StandIn() as standin:`` serves on a free port.

    ``record_limit_bytes`` bounds the media recorded per connection (None: unbounded)
    and ``keep_closed_records`` how many closed connections keep their media, so a
    long-running demo does not grow without limit. ``Connection.truncated`` tells.

    ``resumption_handles`` maps every handle sent (newest ``MAX_RESUMPTION_HANDLES``)
    to the :class:`ModelContext` a setup naming it resumes from.
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
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.host = host
        self.connections: list[Connection] = []
        self.record_limit_bytes = record_limit_bytes
        self.keep_closed_records = keep_closed_records
        self.listeners: list[Callable[[], None]] = []
        self.resumption_handles: dict[str, ModelContext] = {}
        self.pending_tool_calls: dict[str, str] = {}
        self.probe = Probe()
        self._call_ids = 0
        self._port = port
        self._cert_hosts = tuple(cert_hosts)
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TlsFiles | None = None
        self._server: Server | None = None
        self._sessions: dict[int, LiveConnectionHandler] = {}
        self._closed_order: list[Connection] = []
        self._changed = asyncio.Event()

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
                process_request=self._check_path, max_size=MAX_MESSAGE_BYTES,
                logger=_wire_logger,
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

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking on every record change.

        A predicate raising LookupError or AttributeError (say ``connections[0]`` before
        anyone connected) counts as false. Raises TimeoutError describing the records.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate_holds(predicate):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def push(self, message: dict[str, Any], *, connection: int = -1) -> None:
        """Send a raw (camelCase) server message on a live connection."""
        await self._session(connection).send(json.loads(json.dumps(message)))

    async def interrupt(self, *, connection: int = -1) -> None:
        """Cancel the reply in progress and send ``serverContent.interrupted``."""
        await self._session(connection).interrupt()

    async def disconnect(self, *, connection: int = -1, code: int = 1000, reason: str = "") -> None:
        """Close a live connection with ``code`` and ``reason``."""
        await self._session(connection).ws.close(code, reason)

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

        The response (on whichever connection it comes) is recorded and answered with a
        short reply turn quoting it.
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
        await self.wait_for(lambda: self.tool_responses(call_id), timeout)
        return self.tool_responses(call_id)[0][1]

    def new_call_id(self) -> str:
        """A function call id not used before on this server."""
        self._call_ids += 1
        return f"call-{self._call_ids}"

    def remember_tool_call(self, call_id: str, name: str) -> None:
        """A call the model made and awaits a response to (on any connection)."""
        self.pending_tool_calls[call_id] = name

    def take_tool_call(self, call_id: str) -> str | None:
        """Forget a pending call and return its function name; None if it is not pending."""
        return self.pending_tool_calls.pop(call_id, None)

    def remember_handle(self, handle: str, context: ModelContext) -> None:
        """Keep ``context`` for a later setup resuming with ``handle``."""
        handles = self.resumption_handles
        handles[handle] = context
        while len(handles) > MAX_RESUMPTION_HANDLES:
            del handles[next(iter(handles))]

    def lookup_handle(self, handle: str) -> ModelContext | None:
        """The context ``handle`` resumes, or None for an unknown handle."""
        return self.resumption_handles.get(handle)

    def notify(self) -> None:
        """Wake ``wait_for`` callers and listeners: a record changed."""
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self.listeners:
            listener()

    def may_record(self, record: Connection, size: int) -> bool:
        """Whether ``size`` more bytes of media may be kept for ``record``."""
        limit = self.record_limit_bytes
        if limit is not None and record.recorded_bytes + size > limit:
            if not record.truncated and limit > 0:
                logger.warning("Connection #%s: record limit reached, media not kept", record.index)
            record.truncated = True
            return False
        record.recorded_bytes += size
        return True

    def _session(self, index: int) -> LiveConnectionHandler:
        """The live session of connection ``index`` (negative counts from the end)."""
        record = self.connections[index]
        session = self._sessions.get(record.index)
        if session is None:
            raise RuntimeError(f"Connection #{record.index} is closed.")
        return session

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse handshakes for any path but BidiGenerateContent, like Google does."""
        if PATH_RE.match(urlsplit(request.path).path):
            return None
        logger.warning("Refused WebSocket handshake for unknown path %s", request.path)
        return connection.respond(HTTPStatus.NOT_FOUND, "Not found.\n")

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

    def _forget_old(self, record: Connection) -> None:
        """Drop the media of closed connections beyond ``keep_closed_records``."""
        self._closed_order.append(record)
        keep = self.keep_closed_records
        while keep is not None and len(self._closed_order) > keep:
            old = self._closed_order.pop(0)
            for items in (old.messages, old.audio, old.frames, old.replies):
                items.clear()
            old.truncated, old.recorded_bytes = True, 0

    def _timeout_message(self, predicate: Callable[[], bool], timeout: float) -> str:
        """Why ``wait_for`` gave up, with a summary of every connection."""
        code = getattr(predicate, "__code__", None)
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
        name = getattr(predicate, "__qualname__", repr(predicate))
        state = "; ".join(record.summary() for record in self.connections) or "no connections"
        return f"Condition {name}{where} not met within {timeout} s. Stand-in: {state}"


def predicate_holds(predicate: Callable[[], bool]) -> bool:
    """``predicate()``, with lookups into records that do not exist yet as False."""
    try:
        return bool(predicate())
    except (LookupError, AttributeError):
        return False
