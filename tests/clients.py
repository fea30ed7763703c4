"""Test clients for real servers: a browser's share WebSocket and its HTTP side.

The one home of these clients: the integration tests use them against Daphne workers,
the deployment tests against nginx in front of them. (The in-process ASGI client is
tests/conftest.py's ``Browser``.)
"""

import asyncio
import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sessions_app.protocol import Kind
from tests.leaks import SCANNER
from tests.processes import DaphneWorker

# Model audio frames each socket received in its current session, as the page counts them.
_audio_frames: "weakref.WeakKeyDictionary[ClientConnection, int]" = weakref.WeakKeyDictionary()


async def acknowledge(ws: ClientConnection, raw: str | bytes) -> None:
    """Count a model audio frame and ack it, as the page does; a new session counts from 0."""
    if isinstance(raw, bytes):
        _audio_frames[ws] = _audio_frames.get(ws, 0) + 1
        with contextlib.suppress(ConnectionClosed):  # closing: the next recv says so
            await ws.send(json.dumps({"type": "ack", "audio": _audio_frames[ws]}))
    elif '"status"' in raw and json.loads(raw).get("state") in ("connecting", "ended"):
        _audio_frames[ws] = 0


async def expect(ws: ClientConnection, type_: str, timeout: float = 10.0, **fields: Any) -> dict:
    """Read JSON messages (acking audio) until one of ``type_`` with ``fields`` arrives."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            SCANNER.scan("ws", raw)
            await acknowledge(ws, raw)
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
    """A browser's share socket on a worker: reads JSON messages, counts and acks model audio."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.audio_bytes = 0  # model speech received (PCM bytes)

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
                await acknowledge(self.ws, raw)
                if isinstance(raw, bytes):
                    assert raw[:1] == bytes([Kind.AUDIO])
                    self.audio_bytes += len(raw) - 1
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


def admin_open(url: str, cookies: dict[str, str], data: bytes | None = None) -> Any:
    """One request with ``cookies``; redirects come back as HTTPError responses."""
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    if data is not None:
        headers.update({"Origin": url.split("/admin/")[0], "Referer": url})
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - local
    opener = urllib.request.build_opener(NoRedirect)
    try:
        return opener.open(request, timeout=10)
    except urllib.error.HTTPError as response:
        return response


def keep_cookies(response: Any, cookies: dict[str, str]) -> None:
    """Keep the cookies a response sets."""
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";", 1)[0]


def admin_end_now(worker: DaphneWorker, cookie: str, session_id: str) -> str:
    """Run the admin action "End live session now" on ``worker``, as a browser would."""
    url = f"{worker.url}/admin/sessions_app/livesession/"
    name, _, value = cookie.partition("=")
    cookies = {name: value}
    page = admin_open(url, cookies)
    html = page.read().decode()
    assert "End live session now" in html
    keep_cookies(page, cookies)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    data = urllib.parse.urlencode(
        {"action": "end_now", "_selected_action": session_id, "index": "0",
         "csrfmiddlewaretoken": token.group(1)}
    ).encode()  # fmt: skip
    posted = admin_open(url, cookies, data)
    assert posted.status == 302, posted.read().decode()[:2000]  # not a 500
    keep_cookies(posted, cookies)  # the admin's messages travel in a cookie
    return str(admin_open(url, cookies).read().decode())
