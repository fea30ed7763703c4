"""The simplest relay there is, as the tutorials write it: the benchmark's baseline (b).

One asyncio websockets server; each browser socket gets one google-genai Live session.
No Django, no login, no database, no validation, no resumption. It speaks just enough of
the share protocol (docs/protocol.md) for the load generator: ``hello``, ``start`` then
``status live``, binary audio (0x01) and JPEG (0x02) up, binary speech and ``transcript``
messages down, ``text`` and ``stop``.

    python -m bench.bare_relay --port 8100 --base-url https://127.0.0.1:8765 --ca ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

from google import genai
from google.genai import types
from websockets.asyncio.server import ServerConnection, serve

MODEL = "gemini-3.8-live"


def live_config() -> types.LiveConnectConfig:
    """Spoken replies with both transcriptions, as the product asks for."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        output_audio_transcription=types.AudioTranscriptionConfig(),
        input_audio_transcription=types.AudioTranscriptionConfig(),
    )


async def relay(ws: ServerConnection, client: genai.Client) -> None:
    """One browser socket: wait for start, then pump both ways until either side ends."""
    await ws.send(json.dumps({"type": "hello"}))
    async for raw in ws:
        if isinstance(raw, str) and json.loads(raw).get("type") == "start":
            break
    else:
        return
    async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
        await ws.send(json.dumps({"type": "status", "state": "live"}))
        tasks = [asyncio.create_task(up(ws, session)), asyncio.create_task(down(ws, session))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def up(ws: ServerConnection, session: Any) -> None:
    """Browser -> model: audio, frames and typed text, until the browser stops."""
    async for message in ws:
        if isinstance(message, bytes):
            kind, payload = message[0], message[1:]
            if kind == 0x01:
                blob = types.Blob(data=payload, mime_type="audio/pcm;rate=16000")
                await session.send_realtime_input(audio=blob)
            elif kind == 0x02:
                blob = types.Blob(data=payload, mime_type="image/jpeg")
                await session.send_realtime_input(video=blob)
            continue
        data = json.loads(message)
        if data.get("type") == "text":
            await session.send_realtime_input(text=data["text"])
        elif data.get("type") == "stop":
            return


async def down(ws: ServerConnection, session: Any) -> None:
    """Model -> browser: speech and its transcription, across turns."""
    async for frame in model_output(session):
        await ws.send(frame)


async def model_output(session: Any) -> AsyncIterator[bytes | str]:
    """The model's speech (binary 0x01 frames) and transcription (``transcript`` JSON)."""
    while True:
        async for message in session.receive():
            content = message.server_content
            if content is None:
                continue
            if content.model_turn is not None:
                for part in content.model_turn.parts or []:
                    if part.inline_data is not None and part.inline_data.data:
                        yield b"\x01" + part.inline_data.data
            if content.output_transcription is not None:
                text = content.output_transcription.text or ""
                yield json.dumps({"type": "transcript", "role": "model", "text": text})


async def main(port: int, base_url: str, ca: str) -> None:
    """Serve until SIGTERM."""
    client = genai.Client(
        api_key="bench-bare-relay",
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            async_client_args={"ssl": ssl.create_default_context(cafile=ca)},
        ),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await relay(ws, client)

    async with serve(handler, "127.0.0.1", port, max_size=2**21):
        sys.stdout.write(f"bare relay listening on {port}\n")
        sys.stdout.flush()
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.base_url, args.ca))
