"""Helpers for the stand-in's tests: the real google-genai SDK pointed at a stand-in.

No Django here: the stand-in tests get their fixtures from tests/standin/conftest.py.
"""

import asyncio
import contextlib
import io
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import websockets
from google import genai
from google.genai import errors, types
from PIL import Image

from standin import StandIn, ThreadedStandIn
from standin.profiles import DEFAULT_MODEL

API_KEY = "standin-sdk-test-key"
PCM16K = "audio/pcm;rate=16000"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
FOUR_MODELS = (
    "gemini-3.8-live",
    "gemini-3.8-live-extended-thinking",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-3.1-flash-live-preview",
)
BLOCKING_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"  # tools block by default
Server = StandIn | ThreadedStandIn


def make_client_for(base_url: str, ssl_context: ssl.SSLContext) -> genai.Client:
    """An SDK client pointed at ``base_url``, trusting what ``ssl_context`` trusts."""
    options = types.HttpOptions(
        base_url=base_url, api_version="v1beta", async_client_args={"ssl": ssl_context}
    )
    return genai.Client(api_key=API_KEY, http_options=options)


def make_client(server: Server) -> genai.Client:
    """An SDK client pointed at ``server`` and trusting its CA."""
    return make_client_for(server.base_url, server.client_ssl_context())


def audio_config(**fields: Any) -> types.LiveConnectConfig:
    """AUDIO replies with both transcriptions, plus ``fields``."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        **fields,
    )


@contextlib.asynccontextmanager
async def connect(
    server: Server, model: str = DEFAULT_MODEL, config: types.LiveConnectConfig | None = None
) -> AsyncIterator[Any]:
    """An SDK Live session with the stand-in."""
    client = make_client(server)
    async with client.aio.live.connect(model=model, config=config or audio_config()) as session:
        yield session


async def refused(
    server: Server, model: str = DEFAULT_MODEL, config: types.LiveConnectConfig | None = None
) -> errors.APIError:
    """The error ``connect()`` raises for a setup the stand-in refuses."""
    try:
        async with connect(server, model, config):
            pass
    except errors.APIError as error:
        return error
    raise AssertionError("The setup was accepted.")


def resuming(handle: str | None = None) -> types.LiveConnectConfig:
    """AUDIO replies with session resumption (from ``handle``, if any)."""
    return audio_config(session_resumption=types.SessionResumptionConfig(handle=handle))


async def collect_turn(session: Any, timeout: float = 10.0) -> list[types.LiveServerMessage]:
    """Every message up to the end of the turn (``receive()`` stops there)."""
    async with asyncio.timeout(timeout):
        return [message async for message in session.receive()]


async def text_turn(session: Any, text: str) -> list[types.LiveServerMessage]:
    """Send a user text and collect the turn answering it."""
    await session.send_realtime_input(text=text)
    return await collect_turn(session)


async def next_message(session: Any, timeout: float = 5.0) -> types.LiveServerMessage:
    """The next server message."""
    async with asyncio.timeout(timeout), contextlib.aclosing(session.receive()) as stream:
        return await anext(stream)


def fragments(turn: list[types.LiveServerMessage], kind: str) -> list[str]:
    """Texts of ``serverContent.<kind>`` (say ``output_transcription``) in a turn."""
    return [
        getattr(m.server_content, kind).text
        for m in turn
        if m.server_content and getattr(m.server_content, kind)
    ]


def output_text(turn: list[types.LiveServerMessage]) -> str:
    """Output transcription fragments of a turn, joined."""
    return "".join(fragments(turn, "output_transcription"))


def model_parts(turn: list[types.LiveServerMessage]) -> list[types.Part]:
    """Every modelTurn part of a turn."""
    return [
        part
        for m in turn
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts or []
    ]


def audio_parts(turn: list[types.LiveServerMessage]) -> list[bytes]:
    """The inline audio data of every modelTurn part of a turn."""
    return [part.inline_data.data for part in model_parts(turn) if part.inline_data]


def handles(messages: list[types.LiveServerMessage]) -> list[tuple[str, bool]]:
    """(new handle, resumable) of every sessionResumptionUpdate among ``messages``."""
    return [
        (m.session_resumption_update.new_handle, m.session_resumption_update.resumable)
        for m in messages
        if m.session_resumption_update
    ]


def fixed_usage(server: Server, prompt: int = 100, response: int = 50) -> None:
    """Bill every turn a fixed prompt and response (for tests about something else)."""
    server.behaviour.prompt_tokens_per_turn = prompt
    server.behaviour.response_tokens_per_turn = response


def summary(frames: str = "no frames", audio_s: str = "0.0") -> str:
    """The stand-in's 'So far...' sentence."""
    return f"So far I have received {frames} and {audio_s} s of audio."


def pcm_tone(freq: float, seconds: float, rate: int = 16000, amplitude: float = 8000) -> bytes:
    """PCM16LE sine made with numpy (independent of the stand-in's own helpers)."""
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


async def send_audio(session: Any, pcm: bytes, chunk: int = 3200) -> None:
    """Send PCM16 16 kHz audio in 100 ms realtime chunks."""
    for start in range(0, len(pcm), chunk):
        blob = types.Blob(data=pcm[start : start + chunk], mime_type=PCM16K)
        await session.send_realtime_input(audio=blob)


def image(size: tuple[int, int], fmt: str, mode: str = "RGB", **options: Any) -> bytes:
    """An image of ``size`` saved by Pillow as ``fmt`` (JPEG, PNG...) with ``options``."""
    buffer = io.BytesIO()
    Image.new(mode, size, (20, 120, 220, 255)[: len(mode)]).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int]) -> bytes:
    """A JPEG image made with Pillow."""
    return image(size, "JPEG")


def frame(size: tuple[int, int] = (64, 48)) -> types.Blob:
    """A JPEG video frame as the SDK sends it."""
    return types.Blob(data=jpeg(size), mime_type="image/jpeg")


def function_response(
    call_id: str, name: str, scheduling: str | None = None, **response: Any
) -> list[types.FunctionResponse]:
    """One function response, as the SDK sends it, scheduled as given (if at all)."""
    when = types.FunctionResponseScheduling(scheduling) if scheduling else None
    return [types.FunctionResponse(id=call_id, name=name, response=response, scheduling=when)]


def kinds(replies: list[dict[str, Any]]) -> list[str]:
    """A short name for each recorded reply: audio, out, in, in_progress, complete..."""
    names = []
    for reply in replies:
        body = reply.get("serverContent", {})
        if "modelTurn" in body:
            names.append("audio")
        elif "outputTranscription" in body:
            names.append("out")
        elif "inputTranscription" in body:
            names.append("in")
        elif body.get("interactionStatus") == "IN_PROGRESS":
            names.append("in_progress")
        elif "turnComplete" in body:
            names.append("complete")
        elif body:
            names.append(next(iter(body)))
        else:
            names.append(next(iter(reply)))
    return names


async def raw_session(server: StandIn, setup: dict[str, Any], path: str = PATH) -> Any:
    """A plain WebSocket that sent ``setup`` (for what the SDK cannot express)."""
    uri = server.base_url.replace("https://", "wss://") + path
    ws = await websockets.connect(uri, ssl=server.client_ssl_context())
    await ws.send(json.dumps({"setup": setup}))
    return ws
