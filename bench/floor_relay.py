"""The bare relay's work inside Daphne and Channels: the floor of this stack (d).

It does what bench/bare_relay.py does and nothing more (no login, database, validation,
transcripts, resumption or metrics), but as a Channels ``AsyncWebsocketConsumer`` served
by Daphne on uvloop (``python -m assistant_site.serve``), the server and framework the
product runs on, with the same google-genai calls and the product's settings for the
garbage collector. What it spends per message is what Daphne, Channels and the SDK spend
before any of the product's own work: the lowest the product's figures can go without
leaving them.

    FLOOR_BASE_URL=https://127.0.0.1:8765 FLOOR_CA=ca.pem \\
        python -m assistant_site.serve -b 127.0.0.1 -p 8200 bench.floor_relay:application
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import ssl
from typing import Any

import django
from django.conf import settings

if not settings.configured:  # no project settings: no database, no apps, no middleware
    settings.configure(DEBUG=False, DATABASES={}, INSTALLED_APPS=[], USE_TZ=True)
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from google import genai
from google.genai import types

from bench.bare_relay import MODEL, live_config, model_output


@functools.cache
def client() -> genai.Client:
    """One SDK client for the process, pointed at FLOOR_BASE_URL and trusting FLOOR_CA."""
    context = ssl.create_default_context(cafile=os.environ["FLOOR_CA"])
    options = types.HttpOptions(
        base_url=os.environ["FLOOR_BASE_URL"], api_version="v1beta",
        async_client_args={"ssl": context},
    )  # fmt: skip
    return genai.Client(api_key="bench-floor-relay", http_options=options)


class FloorConsumer(AsyncWebsocketConsumer):
    """One browser socket: ``start`` opens a Live session, then media go up, speech down."""

    async def connect(self) -> None:
        self.session: Any = None
        self.stack = contextlib.AsyncExitStack()
        self.down_task: asyncio.Task[None] | None = None
        await self.accept()
        await self.send(text_data=json.dumps({"type": "hello"}))

    async def dispatch(self, message: Any) -> None:
        """As the product's consumer: no ``close_old_connections`` hop per message."""
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            if self.session is None:
                return
            kind, payload = bytes_data[0], bytes_data[1:]
            if kind == 0x01:
                blob = types.Blob(data=payload, mime_type="audio/pcm;rate=16000")
                await self.session.send_realtime_input(audio=blob)
            elif kind == 0x02:
                blob = types.Blob(data=payload, mime_type="image/jpeg")
                await self.session.send_realtime_input(video=blob)
            return
        data = json.loads(text_data or "{}")
        if data.get("type") == "start" and self.session is None:
            connect = client().aio.live.connect(model=MODEL, config=live_config())
            self.session = await self.stack.enter_async_context(connect)
            await self.send(text_data=json.dumps({"type": "status", "state": "live"}))
            self.down_task = asyncio.create_task(self.down())
        elif data.get("type") == "text" and self.session is not None:
            await self.session.send_realtime_input(text=data["text"])
        elif data.get("type") == "stop":
            await self.close()

    async def disconnect(self, code: int) -> None:
        if self.down_task is not None:
            self.down_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.down_task
        with contextlib.suppress(Exception):
            await self.stack.aclose()

    async def down(self) -> None:
        """Model -> browser: speech and its transcription, across turns."""
        with contextlib.suppress(Exception):
            async for frame in model_output(self.session):
                if isinstance(frame, bytes):
                    await self.send(bytes_data=frame)
                else:
                    await self.send(text_data=frame)


application = FloorConsumer.as_asgi()

# The product's process settings for the collector (assistant_site/asgi.py): what is
# loaded stays out of its passes, and the young generation is collected ten times less
# often. Without them this relay spent more per message than the product.
gc.freeze()
gc.set_threshold(7000, 10, 10)
