"""An offline stand-in for the Gemini Live ``BidiGenerateContent`` WebSocket service.

It speaks the wire protocol of the google-genai SDK over TLS, records everything each
client sends in a :class:`Connection` and answers with deterministic, synthetic model
turns (see :class:`_Session`). It does not import Django: it also runs standalone.

The SDK mixes snake_case and camelCase keys (``realtime_input``, ``mime_type``,
``turnComplete``...), as proto JSON allows. Every client message is normalised to
camelCase on arrival, except user-defined maps such as function ``args``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sessions_app.live.emulator import media
from sessions_app.live.emulator.tls import TlsFiles, ensure_tls_files

logger = logging.getLogger(__name__)

PATH_RE = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.[\w.-]+\.GenerativeService"
    r"\.BidiGenerateContent(?:Constrained)?$"
)
SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})
REDACTED = "<redacted>"
INVALID_ARGUMENT = 1007
MAX_MESSAGE_BYTES = 16 * 2**20
DEFAULT_RECORD_LIMIT = 16 * 2**20
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised, never bound here
OUTPUT_RATE = 24000
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
WORDS_PER_TEXT_PART = 3
PITCH_ANALYSIS_S = 2.0  # bounds the pure-Python pitch estimate's cost per utterance
_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")
# User data (function args and results, JSON schemas) is kept exactly as sent...
_OPAQUE_KEYS = frozenset(
    {"args", "response", "default", "example", "parametersJsonSchema", "responseJsonSchema"}
)
# ...and so are the user-chosen keys of these maps, whose values are protocol objects.
_USER_KEYED_MAPS = frozenset({"properties"})


@dataclass
class Behaviour:
    """How the stand-in's synthetic model behaves; tests may change it between turns."""

    speech_gap_s: float = 0.4
    silence_rms: float = 200.0
    max_utterance_s: float = 5.0
    reply_audio_s: float = 0.6
    reply_tone_hz: float = 660.0
    audio_chunk_s: float = 0.1
    reply_delay_s: float = 0.0
    chunk_interval_s: float = 0.0
    prompt_tokens_per_turn: int = 100
    response_tokens_per_turn: int = 50
    resumption_updates: bool = True


@dataclass(eq=False)
class Connection:
    """Everything one client connection sent and received, in order."""

    index: int
    path: str
    headers: dict[str, str]
    had_api_key: bool = False
    setup: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list, repr=False)
    audio: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    frames: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    texts: list[str] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list, repr=False)
    closed: bool = False
    close_code: int | None = None
    close_reason: str = ""
    truncated: bool = False
    recorded_bytes: int = field(default=0, repr=False)

    def audio_bytes(self) -> bytes:
        """The data of every recorded realtime audio chunk, concatenated."""
        return b"".join(data for _, data in self.audio)

    def snapshot(self) -> Connection:
        """A copy whose lists no longer change with the live connection."""
        return replace(
            self, headers=dict(self.headers), messages=list(self.messages),
            audio=list(self.audio), frames=list(self.frames), texts=list(self.texts),
            tool_responses=list(self.tool_responses), replies=list(self.replies),
        )  # fmt: skip

    def summary(self) -> str:
        """One line describing the record, for error messages."""
        state = "closed" if self.closed else "open"
        return (
            f"#{self.index} {state} setup={self.setup is not None} messages={len(self.messages)}"
            f" audio={len(self.audio)} frames={len(self.frames)} texts={self.texts!r}"
            f" replies={len(self.replies)}"
        )


class InvalidInput(Exception):
    """A client message the real service would reject (closes with 1007)."""


def camelize(value: Any) -> Any:
    """Proto-JSON key normalisation: snake_case keys become camelCase, recursively."""
    if isinstance(value, list):
        return [camelize(item) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key) if isinstance(key, str) else key
        if name in _OPAQUE_KEYS:
            result[name] = item
        elif name in _USER_KEYED_MAPS and isinstance(item, dict):
            result[name] = {user_key: camelize(schema) for user_key, schema in item.items()}
        else:
            result[name] = camelize(item)
    return result


def _camel(name: str) -> str:
    """``mime_type`` -> ``mimeType``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


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
        self._port = port
        self._cert_hosts = tuple(cert_hosts)
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TlsFiles | None = None
        self._server: Server | None = None
        self._sessions: dict[int, _Session] = {}
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
            if not record.truncated:
                logger.warning("Connection #%s: record limit reached, media not kept", record.index)
            record.truncated = True
            return False
        record.recorded_bytes += size
        return True

    def _session(self, index: int) -> _Session:
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
        record = Connection(
            index=len(self.connections), path=request.path,
            headers=redact_headers(request.headers),
            had_api_key=bool(request.headers.get("x-goog-api-key")),
        )  # fmt: skip
        self.connections.append(record)
        session = self._sessions[record.index] = _Session(self, ws, record)
        logger.info("Connection #%s opened (api key: %s)", record.index, record.had_api_key)
        self.notify()
        try:
            await session.run()
        finally:
            await session.shutdown()
            del self._sessions[record.index]
            record.closed, record.close_code = True, ws.close_code
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


class _Session:
    """The protocol state and the synthetic model of one client connection.

    Replies are queued and played one at a time by a worker task, so turns never
    interleave; ``interrupt`` cancels only the turn playing.
    """

    def __init__(self, standin: StandIn, ws: ServerConnection, record: Connection) -> None:
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
