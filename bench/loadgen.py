"""The load generator: simulated users that speak the browser's protocol, stamped.

Each :class:`SimUser` holds one live session and, like the share page, streams 16 kHz
PCM in 100 ms chunks at real time, sends a JPEG of about 60 KB once a second and a typed
message now and then, and takes in the model's 24 kHz speech and transcripts. Every
payload carries a stamp (:mod:`standin.probe`): the stand-in times
what arrives upstream, the generator times the model's speech arriving downstream.

Two transports reach the stand-in: :class:`SocketTransport` opens the share socket of the
product (with a logged-in session cookie) or of the bare relay (the same protocol, no
login), and :class:`DirectTransport` uses the google-genai SDK with no relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from google import genai
from google.genai import types
from websockets.asyncio.client import ClientConnection, connect

from standin import probe

AUDIO_KIND, JPEG_KIND = 0x01, 0x02
CHUNK_S = 0.1
INPUT_RATE = 16000
CHUNK_BYTES = 2 * round(CHUNK_S * INPUT_RATE)  # 3,200 bytes of PCM16
FRAME_INTERVAL_S = 1.0
TEXT_INTERVAL_S = (6.0, 12.0)  # a typed message every 6 to 12 s
JPEG_TARGET_BYTES = 60_000
END_TIMEOUT_S = 20.0
ACK_EVERY = 4  # model audio frames acknowledged at a time, as the share page does
OPEN_TIMEOUT_S = 60.0


def make_jpeg(target: int = JPEG_TARGET_BYTES, seed: int = 7) -> bytes:
    """A screen-like JPEG: 1024x576, lines of text-like blocks, about ``target`` bytes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = 1024, 576
    pixels = np.full((height, width, 3), 245, dtype=np.uint8)
    for row in range(20, height - 20, 18):  # lines of "text"
        x = 24
        while x < width - 60:
            word = int(rng.integers(12, 70))
            shade = int(rng.integers(20, 90))
            pixels[row : row + 10, x : x + word] = shade
            x += word + int(rng.integers(6, 14))
    best = b""
    for quality in range(95, 10, -5):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) <= target:
            break
    return best


def ws_frame_bytes(payload: int, *, masked: bool) -> int:
    """Bytes one WebSocket frame of ``payload`` bytes takes on the wire."""
    header = 2 if payload < 126 else 4 if payload < 65536 else 10
    return header + (4 if masked else 0) + payload


def base64_json_size(kind: str, payload: bytes | int) -> int:
    """The size of the same payload as base64 inside a JSON text frame.

    Counted, not encoded: base64 takes 4 characters per 3 bytes (padded), none of which
    JSON escapes, so the generator does not spend its core encoding every payload twice.
    """
    size = payload if isinstance(payload, int) else len(payload)
    return len(json.dumps({"type": kind, "data": ""})) + 4 * ((size + 2) // 3)


@dataclass
class Wire:
    """Bytes a session put on the browser link, as binary frames and as base64 JSON."""

    binary: int = 0
    base64_json: int = 0

    def media(self, kind: str, payload: bytes, *, upstream: bool) -> None:
        """Count one media payload in both framings."""
        self.binary += ws_frame_bytes(1 + len(payload), masked=upstream)
        self.base64_json += ws_frame_bytes(base64_json_size(kind, len(payload)), masked=upstream)

    def text(self, size: int, *, upstream: bool) -> None:
        """Count one JSON message, the same in both framings."""
        frame = ws_frame_bytes(size, masked=upstream)
        self.binary += frame
        self.base64_json += frame


@dataclass
class SessionResult:
    """What one simulated session sent and received."""

    tag: int
    sent: Counter[str] = field(default_factory=Counter)
    down_latencies_ns: list[int] = field(default_factory=list)
    down_received: int = 0
    down_unstamped: int = 0
    start_s: float | None = None
    streamed_s: float = 0.0
    wire: Wire = field(default_factory=Wire)
    ended: bool = False
    error: str | None = None


class Transport(Protocol):
    """One way of reaching the model: open, send media and text, receive events."""

    async def open(self) -> None:
        """Connect and wait until the session is live."""

    async def send_audio(self, pcm: bytes) -> None:
        """Send one microphone chunk."""

    async def send_frame(self, jpeg: bytes) -> None:
        """Send one screen frame."""

    async def send_text(self, text: str) -> None:
        """Send one typed message."""

    def events(self) -> AsyncIterator[tuple[str, Any]]:
        """("audio", pcm) and ("transcript", text) as they arrive; ends when closed."""

    async def close(self) -> None:
        """End the session and disconnect."""


class SocketTransport:
    """The share socket of the product or of the bare relay."""

    def __init__(self, ws_url: str, *, cookie: str = "", origin: str = "http://127.0.0.1") -> None:
        self.ws_url, self.cookie, self.origin = ws_url, cookie, origin
        self.ws: ClientConnection | None = None
        self.result: SessionResult | None = None  # for the wire count of JSON messages

    async def open(self) -> None:
        """Connect, read hello, send start, wait for status live."""
        headers = {"Origin": self.origin}
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.ws = await connect(
            self.ws_url, additional_headers=headers, max_size=2**21, open_timeout=OPEN_TIMEOUT_S
        )
        await self._send_json({"type": "start", "mode": "audio", "voice": "Puck"})
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("type") == "error":
                raise RuntimeError(f"start refused: {message}")
            if message.get("type") == "status" and message.get("state") == "live":
                return
            if message.get("type") == "status" and message.get("state") == "ended":
                raise RuntimeError(f"session ended at start: {message}")

    async def send_audio(self, pcm: bytes) -> None:
        """Kind byte 0x01, then the PCM."""
        await self._ws().send(bytes([AUDIO_KIND]) + pcm)

    async def send_frame(self, jpeg: bytes) -> None:
        """Kind byte 0x02, then the JPEG."""
        await self._ws().send(bytes([JPEG_KIND]) + jpeg)

    async def send_text(self, text: str) -> None:
        """A text message."""
        await self._send_json({"type": "text", "text": text})

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Model speech (binary 0x01, acknowledged like the page) and model transcripts."""
        frames = 0
        with contextlib.suppress(Exception):
            async for raw in self._ws():
                if isinstance(raw, bytes):
                    if raw[:1] == bytes([AUDIO_KIND]):
                        frames += 1
                        if frames % ACK_EVERY == 0:
                            await self._send_json({"type": "ack", "audio": frames})
                        yield "audio", raw[1:]
                    continue
                self._count_down(len(raw.encode()))
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "transcript" and message.get("role") == "model":
                    yield "transcript", message.get("text", "")
                elif kind == "error":
                    yield "error", f"{message.get('code')}: {message.get('message')}"
                elif kind == "status" and message.get("state") == "ended":
                    yield "ended", message.get("reason")

    async def close(self) -> None:
        """Send stop, then close the socket."""
        if self.ws is None:
            return
        with contextlib.suppress(Exception):
            await self._send_json({"type": "stop"})
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _send_json(self, message: dict[str, Any]) -> None:
        """Send a JSON text frame and count it."""
        text = json.dumps(message)
        if self.result is not None:
            self.result.wire.text(len(text.encode()), upstream=True)
        await self._ws().send(text)

    def _count_down(self, size: int) -> None:
        """Count a JSON message from the server."""
        if self.result is not None:
            self.result.wire.text(size, upstream=False)

    def _ws(self) -> ClientConnection:
        if self.ws is None:
            raise RuntimeError("not open")
        return self.ws


class DirectTransport:
    """The google-genai SDK straight to the stand-in: the floor."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, model: str) -> None:
        self.client = genai.Client(
            api_key="bench-direct",
            http_options=types.HttpOptions(
                base_url=base_url, api_version="v1beta", async_client_args={"ssl": ssl_context}
            ),
        )
        self.model = model
        self._stack = contextlib.AsyncExitStack()
        self.session: Any = None

    async def open(self) -> None:
        """Connect with the product's modality and transcriptions."""
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            output_audio_transcription=types.AudioTranscriptionConfig(),
            input_audio_transcription=types.AudioTranscriptionConfig(),
        )
        self.session = await self._stack.enter_async_context(
            self.client.aio.live.connect(model=self.model, config=config)
        )

    async def send_audio(self, pcm: bytes) -> None:
        await self.session.send_realtime_input(
            audio=types.Blob(data=pcm, mime_type="audio/pcm;rate=16000")
        )

    async def send_frame(self, jpeg: bytes) -> None:
        await self.session.send_realtime_input(video=types.Blob(data=jpeg, mime_type="image/jpeg"))

    async def send_text(self, text: str) -> None:
        await self.session.send_realtime_input(text=text)

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Every turn's audio and output transcription (receive() stops after each turn)."""
        with contextlib.suppress(Exception):
            while True:
                async for message in self.session.receive():
                    content = message.server_content
                    if content is None:
                        continue
                    for part in (content.model_turn.parts or []) if content.model_turn else []:
                        if part.inline_data is not None and part.inline_data.data:
                            yield "audio", part.inline_data.data
                    if content.output_transcription is not None:
                        yield "transcript", content.output_transcription.text or ""

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stack.aclose()


class SimUser:
    """One simulated user with one live session."""

    def __init__(self, tag: int, transport: Transport, jpeg: bytes) -> None:
        self.tag = tag
        self.transport = transport
        self.jpeg = jpeg
        self.result = SessionResult(tag)
        if isinstance(transport, SocketTransport):
            transport.result = self.result
        self._rng = random.Random(tag)
        self._transcript = ""
        self._end_seen = asyncio.Event()
        self._receiver: asyncio.Task[None] | None = None
        self._silence = bytes(CHUNK_BYTES)

    async def open(self) -> None:
        """Open the session; its start time is socket open to live."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.transport.open()
        self.result.start_s = loop.time() - started
        self._receiver = asyncio.create_task(self._receive(), name=f"recv-{self.tag}")

    async def stream(self, seconds: float) -> None:
        """Send audio, frames and texts at the browser's rates for ``seconds``."""
        loop = asyncio.get_running_loop()
        begin = loop.time()
        await asyncio.gather(
            self._audio(begin, seconds), self._frames(begin, seconds), self._texts(begin, seconds)
        )
        self.result.streamed_s = loop.time() - begin

    async def finish(self) -> None:
        """Say bench:end, wait for the stand-in's bench-end (all speech delivered), close."""
        try:
            await self.transport.send_text(probe.END_TEXT)
            await asyncio.wait_for(self._end_seen.wait(), END_TIMEOUT_S)
            self.result.ended = True
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - recorded, reported as lost
            self.result.error = self.result.error or f"end: {type(exc).__name__}: {exc}"
        finally:
            await self.transport.close()
            if self._receiver is not None:
                self._receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._receiver

    async def _audio(self, begin: float, seconds: float) -> None:
        """100 ms chunks at real time (a late tick sends at once, keeping the rate).

        Each session's ticks have their own phase, as browsers' microphones do; aligned
        ticks would make every session's chunk arrive in the same instant.
        """
        loop = asyncio.get_running_loop()
        count = round(seconds / CHUNK_S)
        phase = self._rng.random() * CHUNK_S
        for seq in range(count):
            delay = begin + phase + seq * CHUNK_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pcm = probe.stamp_pcm(self._silence, self.tag, seq)
            self.result.wire.media("audio", pcm, upstream=True)
            await self.transport.send_audio(pcm)
            self.result.sent["audio"] += 1

    async def _frames(self, begin: float, seconds: float) -> None:
        """One JPEG a second, the first after a random fraction of a second."""
        loop = asyncio.get_running_loop()
        offset = self._rng.random() * FRAME_INTERVAL_S
        seq = 0
        while (due := begin + offset + seq * FRAME_INTERVAL_S) < begin + seconds:
            await asyncio.sleep(max(0.0, due - loop.time()))
            jpeg = probe.stamp_jpeg(self.jpeg, self.tag, seq)
            self.result.wire.media("frame", jpeg, upstream=True)
            await self.transport.send_frame(jpeg)
            self.result.sent["frame"] += 1
            seq += 1

    async def _texts(self, begin: float, seconds: float) -> None:
        """A typed message now and then."""
        loop = asyncio.get_running_loop()
        due = begin + self._rng.uniform(1.0, TEXT_INTERVAL_S[0])
        seq = 0
        while due < begin + seconds:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self.transport.send_text(probe.stamp_text(f"typed message {seq}", self.tag, seq))
            self.result.sent["text"] += 1
            seq += 1
            due += self._rng.uniform(*TEXT_INTERVAL_S)

    async def _receive(self) -> None:
        """Time stamped model speech; watch the transcript for the stand-in's bench-end."""
        async for kind, value in self.transport.events():
            if kind == "audio":
                at = probe.now_ns()
                self.result.wire.media("audio", value, upstream=False)
                found = probe.read_stamp(value)
                if found is None:
                    self.result.down_unstamped += 1
                    continue
                self.result.down_received += 1
                self.result.down_latencies_ns.append(at - found[2])
            elif kind == "transcript":
                self._transcript = (self._transcript + value)[-200:]
                if probe.END_REPLY in self._transcript:
                    self._end_seen.set()
            elif kind == "error":
                self.result.error = self.result.error or str(value)
            elif kind == "ended":
                self.result.error = self.result.error or f"ended: {value}"
                self._end_seen.set()
                return
