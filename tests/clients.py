"""Test clients for real servers: a browser's share WebSocket and its HTTP side.

The one home of these clients: the integration tests use them against Daphne workers,
the deployment tests against nginx in front of them. (The in-process ASGI client is
tests/conftest.py's ``Browser``.)
"""

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sessions_app.protocol import Kind
from tests.leaks import SCANNER
from tests.processes import DaphneWorker


async def expect(ws: ClientConnection, type_: str, timeout: float = 10.0, **fields: Any) -> dict:
    """Read JSON messages (skipping audio) until one of ``type_`` with ``fields`` arrives."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            SCANNER.scan("ws", raw)
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message["type"] == type_ and all(message.get(k) == v for k, v in fields.items()):
                return dict(message)


async def start_live(ws: ClientConnection) -> str:
    """Start a spoken-reply session; its id."""
    await ws.send(json.dumps({"type": "start", "mode": "audio"}))
    return str((await expect(ws, "status", state="live"))["session_id"])


async def say(ws: ClientConnection, text: str) -> None:
    """Send a typed message and wait for the model's whole reply."""
    await ws.send(json.dumps({"type": "text", "text": text}))
    await expect(ws, "turn_complete")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Return redirects instead of following them (the client keeps cookies by hand)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Never follow."""
        return None


class Socket:
    """A browser's share socket on a worker: reads JSON messages, skips model audio."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, worker: DaphneWorker, cookie: str, max_message_bytes: int) -> "Socket":
        """Connect with the session cookie and the site's Origin; wait for hello, which
        must announce ``max_message_bytes``."""
        ws = await connect(
            worker.ws_url,
            origin=worker.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            max_size=None,
        )
        socket = cls(ws)
        hello = await socket.until(lambda m: m["type"] == "hello")
        assert hello[-1]["max_message_bytes"] == max_message_bytes
        return socket

    async def send(self, payload: str | bytes, *, as_text: bool = False) -> None:
        """Send one frame: text for str, binary for bytes (or text, raw, with ``as_text``)."""
        await self.ws.send(payload, text=True if as_text else None)

    async def send_json(self, **message: Any) -> None:
        """Send one JSON control message."""
        await self.send(json.dumps(message))

    async def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """The JSON messages received up to and including the first one ``done`` accepts."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                SCANNER.scan("ws", raw)
                if isinstance(raw, bytes):
                    assert raw[:1] == bytes([Kind.AUDIO])
                    continue
                message = json.loads(raw)
                self.messages.append(message)
                seen.append(message)
                if done(message):
                    return seen

    async def start(self) -> str:
        """Start a live session; its id."""
        await self.send_json(type="start", mode="audio", voice="Puck")
        seen = await self.until(lambda m: m["type"] == "status" and m["state"] == "live")
        assert not [m for m in seen if m["type"] == "error"]
        return str(seen[-1]["session_id"])

    async def say(self, text: str) -> None:
        """A typed text, echoed and answered in full, with no error on the way."""
        await self.send_json(type="text", text=text)
        seen = await self.until(lambda m: m["type"] == "turn_complete")
        assert not [m for m in seen if m["type"] == "error"], seen
        echoes = [m["text"] for m in seen if m["type"] == "transcript" and m.get("final")]
        assert echoes == [text]

    async def stop(self) -> None:
        """Stop the live session; it ends as the user's stop."""
        await self.send_json(type="stop")
        seen = await self.until(lambda m: m["type"] == "status" and m["state"] == "ended")
        assert seen[-1]["reason"] == "client_stop"

    async def close_code(self, timeout: float = 15.0) -> int | None:
        """Read until the server closes the socket; the close code, as a browser sees it."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    SCANNER.scan("ws", await self.ws.recv())
        except ConnectionClosed:
            return self.ws.close_code  # 1006 when the TCP connection ended with no close frame
