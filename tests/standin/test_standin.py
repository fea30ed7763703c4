"""The Gemini Live stand-in, driven by the real google-genai SDK over TLS (no mocks).

The default model is ``gemini-3.8-live``: AUDIO replies only, each split by a
turnComplete with ``interactionStatus: IN_PROGRESS`` and ended by one saying ``IDLE``.
No Django here: these tests define their own fixtures and run with ``-p no:django``.
"""

import asyncio
import base64
import contextlib
import json
import logging
import math
import re
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from google.genai import errors, types
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from standin import Behaviour, StandIn, ThreadedStandIn
from standin.profiles import DEFAULT_MODEL, PROFILES
from tests.standin import sdk
from tests.standin.sdk import (
    API_KEY,
    BLOCKING_MODEL,
    PATH,
    PCM16K,
    Server,
    collect_turn,
    fixed_usage,
    fragments,
    function_response,
    image,
    kinds,
    make_client,
    make_client_for,
    model_parts,
    next_message,
    output_text,
    pcm_tone,
    send_audio,
    summary,
)

MODEL = DEFAULT_MODEL
SYSTEM = "You are a terse test assistant."
ROOT = Path(__file__).resolve().parents[2]
# The final turnComplete of a text turn, as the stand-in sends it with fixed usage knobs.
IDLE_WITH_USAGE = {
    "serverContent": {"turnComplete": True, "interactionStatus": "IDLE"},
    "usageMetadata": {
        "promptTokenCount": 100,
        "responseTokenCount": 50,
        "totalTokenCount": 150,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 100}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
    },
}


def live_config(modality: str = "AUDIO") -> types.LiveConnectConfig:
    """AUDIO replies (voice Puck), both transcriptions, a system instruction."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality(modality)],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Puck")
            )
        ),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        system_instruction=SYSTEM,
    )


def connect(server: Server, model: str = MODEL) -> contextlib.AbstractAsyncContextManager[Any]:
    """An SDK Live session with the stand-in, set up with ``live_config()``."""
    return sdk.connect(server, model, live_config())


@pytest.mark.asyncio
async def test_setup_is_recorded_acknowledged_and_the_key_never_kept(
    standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connect(standin) as session:
        assert session.setup_complete is not None
    await standin.wait_for(lambda: standin.connections[0].closed)

    record = standin.connections[0]
    assert record.index == 0
    assert record.path == PATH
    assert record.setup == {
        "model": f"models/{MODEL}",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}},
        },
        "systemInstruction": {"parts": [{"text": SYSTEM}], "role": "user"},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
    }
    assert record.replies == [{"setupComplete": {}}]
    assert record.messages == []
    assert record.profile is PROFILES[MODEL]
    assert record.turn_coverage == "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"  # its default
    assert (record.media_resolution, record.thinking_level) == (None, None)
    assert record.conversation == 0
    assert record.close_code == 1000
    assert record.had_api_key is True
    assert record.headers["x-goog-api-key"] == "<redacted>"
    assert record.headers["user-agent"].startswith("google-genai-sdk/")
    assert API_KEY not in repr(record) + json.dumps(record.headers)
    own_logs = [r.getMessage() for r in caplog.records if r.name.startswith("standin")]
    assert "< x-goog-api-key: <redacted>" in own_logs  # websockets' handshake debug log
    assert not [line for line in own_logs if API_KEY in line]


def lookup_tool_config() -> types.LiveConnectConfig:
    """A config with a user-named tool and every setup key the stand-in normalises."""
    lookup = types.FunctionDeclaration(
        name="lookup",
        parameters=types.Schema(
            type="OBJECT",
            properties={"query_text": types.Schema(type="STRING", max_length=5)},
            required=["query_text"],
        ),
    )
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        tools=[types.Tool(function_declarations=[lookup])],
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=True),
            turn_coverage=types.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
        ),
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        session_resumption=types.SessionResumptionConfig(),
    )
    return config


def check_normalised_setup(standin: StandIn) -> None:
    """The setup's keys arrived camelCased; the tool's own names were kept."""
    setup = standin.connections[0].setup
    assert setup["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"query_text": {"type": "STRING", "maxLength": 5}},
                        "required": ["query_text"],
                    },
                }
            ]
        }
    ]
    assert setup["realtimeInputConfig"] == {
        "automaticActivityDetection": {"disabled": True},
        "turnCoverage": "TURN_INCLUDES_ALL_INPUT",
    }
    assert setup["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert setup["sessionResumption"] == {}
    record = standin.connections[0]
    assert (record.turn_coverage, record.media_resolution) == (
        "TURN_INCLUDES_ALL_INPUT",
        "MEDIA_RESOLUTION_LOW",
    )


@pytest.mark.asyncio
async def test_setup_keys_are_normalised_but_user_names_kept_and_resumption_updates(
    standin: StandIn,
) -> None:
    client = make_client(standin)
    async with client.aio.live.connect(model=MODEL, config=lookup_tool_config()) as session:
        await session.send_realtime_input(text="hi")
        turn = await collect_turn(session)
        update = await next_message(session)

    check_normalised_setup(standin)
    assert turn[0].session_resumption_update.new_handle == "standin-0-0"  # after setupComplete
    assert update.session_resumption_update.new_handle == "standin-0-1"
    assert update.session_resumption_update.resumable is True


@pytest.mark.asyncio
async def test_audio_bytes_arrive_exactly_from_url_safe_base64(standin: StandIn) -> None:
    standin.behaviour.silence_rms = 1e9  # all silence: this test wants no reply
    data = bytes(range(256)) * 8
    assert {"-", "_"} <= set(base64.urlsafe_b64encode(data).decode())
    async with connect(standin) as session:
        await session.send_realtime_input(audio=types.Blob(data=data, mime_type=PCM16K))
        await session.send_realtime_input(
            audio=types.Blob(data=data[::-1], mime_type="audio/pcm;rate=24000")
        )
        await standin.wait_for(lambda: len(standin.connections[0].audio) == 2)

    record = standin.connections[0]
    assert record.audio == [(PCM16K, data), ("audio/pcm;rate=24000", data[::-1])]
    assert record.audio_bytes() == data + data[::-1]
    first = record.messages[0]["realtimeInput"]["audio"]
    assert first == {"data": base64.urlsafe_b64encode(data).decode(), "mimeType": PCM16K}
    assert record.replies == [{"setupComplete": {}}]


@pytest.mark.asyncio
async def test_video_frames_are_exact_sized_and_get_no_reply_alone(standin: StandIn) -> None:
    jpeg, png = image((64, 48), "JPEG"), image((32, 16), "PNG")
    async with connect(standin) as session:
        await session.send_realtime_input(video=types.Blob(data=jpeg, mime_type="image/jpeg"))
        await session.send_realtime_input(video=types.Blob(data=png, mime_type="image/png"))
        await standin.wait_for(lambda: len(standin.connections[0].frames) == 2)
        assert standin.connections[0].replies == [{"setupComplete": {}}]
        await session.send_realtime_input(text="What do you see?")
        # The first message after the frames is the text's reply: they got none alone.
        turn = await collect_turn(session)

    record = standin.connections[0]
    assert record.frames == [("image/jpeg", jpeg), ("image/png", png)]
    assert record.texts == ["What do you see?"]
    frames = "2 frames (latest 32x16)"  # the default turn coverage counts every frame
    assert output_text(turn) == f'You said: "What do you see?". {summary(frames)}'
    assert all(part.inline_data.mime_type == "audio/pcm;rate=24000" for part in model_parts(turn))
    assert kinds(record.replies)[1:3] == ["audio", "out"]


@pytest.mark.asyncio
async def test_text_turn_streams_audio_and_transcript_then_ends_with_usage(
    standin: StandIn,
) -> None:
    async with connect(standin) as session:
        await session.send_realtime_input(text="Hello there")
        turn = await collect_turn(session)

    expected = f'You said: "Hello there". {summary()}'
    # Interleaved, in two parts: more output follows the IN_PROGRESS turnComplete.
    half = ["audio", "out"] * 3
    sent = kinds(standin.connections[0].replies)
    assert sent == ["setupComplete", *half, "in_progress", *half, "generationComplete", "complete"]
    assert turn[6].server_content.turn_complete is True
    assert turn[6].server_content.interaction_status == types.InteractionStatus.IN_PROGRESS
    assert turn[6].usage_metadata is None
    parts = model_parts(turn)
    assert [p.inline_data.mime_type for p in parts] == ["audio/pcm;rate=24000"] * 6
    assert [len(p.inline_data.data) for p in parts] == [4800] * 6  # 0.1 s of 24 kHz PCM16
    samples = np.frombuffer(b"".join(p.inline_data.data for p in parts), dtype="<i2")
    peak = np.fft.rfftfreq(samples.size, 1 / 24000)[np.abs(np.fft.rfft(samples)).argmax()]
    assert peak == pytest.approx(660, abs=2)
    pieces = fragments(turn, "output_transcription")
    assert "".join(pieces) == expected
    assert all(1 <= len(piece.split()) <= 4 for piece in pieces)

    assert turn[-2].server_content.generation_complete is True
    final = turn[-1]
    assert final.server_content.turn_complete is True
    assert final.server_content.interaction_status == types.InteractionStatus.IDLE
    # Billed at about 4 characters a text token (the system instruction and the text) and
    # 32 tokens a second of reply audio (six chunks of 0.1 s).
    prompt = math.ceil(len(SYSTEM) / 4) + math.ceil(len("Hello there") / 4)
    response = round(32 * 0.6)
    usage = final.usage_metadata
    assert (usage.prompt_token_count, usage.response_token_count) == (prompt, response)
    assert [(d.modality, d.token_count) for d in usage.prompt_tokens_details] == [
        (types.MediaModality.TEXT, prompt)
    ]
    assert standin.connections[0].replies[-1] == {
        "serverContent": {"turnComplete": True, "interactionStatus": "IDLE"},
        "usageMetadata": {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
        },
    }


@pytest.mark.asyncio
async def test_turns_follow_each_other_and_queued_texts_never_interleave(
    standin: StandIn,
) -> None:
    standin.behaviour.chunk_interval_s = 0.01
    async with connect(standin) as session:
        for text in ("first", "second"):
            await session.send_realtime_input(text=text)
            assert output_text(await collect_turn(session)) == f'You said: "{text}". {summary()}'
        await session.send_realtime_input(text="third")
        await session.send_realtime_input(text="fourth")
        third, fourth = await collect_turn(session), await collect_turn(session)

    assert output_text(third) == f'You said: "third". {summary()}'
    assert output_text(fourth) == f'You said: "fourth". {summary()}'
    assert len(model_parts(third)) == len(model_parts(fourth)) == 6
    assert standin.connections[0].texts == ["first", "second", "third", "fourth"]


@pytest.mark.asyncio
async def test_text_modality_is_refused_with_1007(standin: StandIn) -> None:
    client = make_client(standin)
    with pytest.raises(errors.APIError) as info:
        async with client.aio.live.connect(model=MODEL, config=live_config("TEXT")):
            pass

    reason = "Cannot extract voices from a non-audio request."
    assert (info.value.code, info.value.details) == (1007, reason)
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert record.setup["generationConfig"]["responseModalities"] == ["TEXT"]
    assert (record.close_code, record.close_reason, record.replies) == (1007, reason, [])


@pytest.mark.asyncio
async def test_client_content_turn_gets_a_reply_when_complete(standin: StandIn) -> None:
    async with connect(standin) as session:
        first = types.Content(role="user", parts=[types.Part(text="part one")])
        await session.send_client_content(turns=first, turn_complete=False)
        second = types.Content(role="user", parts=[types.Part(text="part two")])
        await session.send_client_content(turns=second, turn_complete=True)
        turn = await collect_turn(session)

    assert output_text(turn) == f'You said: "part one part two". {summary()}'
    record = standin.connections[0]
    assert record.texts == ["part one", "part two"]
    assert record.messages[1] == {
        "clientContent": {
            "turns": [{"parts": [{"text": "part two"}], "role": "user"}],
            "turnComplete": True,
        }
    }


@pytest.mark.asyncio
async def test_spoken_tone_is_transcribed_with_its_frequency(standin: StandIn) -> None:
    async with connect(standin) as session:
        await send_audio(session, pcm_tone(440, 1.2))  # then nothing: the gap timer ends it
        turn = await collect_turn(session)

    heard = fragments(turn, "input_transcription")
    assert 2 <= len(heard) <= 3
    match = re.fullmatch(r"\(heard 1\.2 s of audio at about (\d+) Hz\)", "".join(heard))
    assert match, heard
    assert int(match[1]) == pytest.approx(440, rel=0.02)
    assert output_text(turn) == f"I heard 1.2 s of audio. {summary(audio_s='1.2')}"
    # The user's words come late: the first before the reply, the rest within it.
    first_audio = next(i for i, m in enumerate(turn) if m.server_content.model_turn)
    heard_at = [i for i, m in enumerate(turn) if m.server_content.input_transcription]
    assert heard_at[0] < first_audio < heard_at[-1]
    details = turn[-1].usage_metadata.prompt_tokens_details
    assert [(d.modality, d.token_count) for d in details] == [
        (types.MediaModality.TEXT, math.ceil(len(SYSTEM) / 4)),
        (types.MediaModality.AUDIO, round(32 * 1.2)),  # 32 tokens a second of audio
    ]


@pytest.mark.asyncio
async def test_input_transcription_all_before_the_reply_when_not_late(standin: StandIn) -> None:
    standin.behaviour.late_input_transcription = False
    async with connect(standin) as session:
        await send_audio(session, pcm_tone(440, 0.6))
        await session.send_realtime_input(audio_stream_end=True)
        turn = await collect_turn(session)

    first_audio = next(i for i, m in enumerate(turn) if m.server_content.model_turn)
    heard_at = [i for i, m in enumerate(turn) if m.server_content.input_transcription]
    assert len(heard_at) >= 2
    assert heard_at == list(range(len(heard_at)))  # the turn opens with all of them
    assert max(heard_at) < first_audio


@pytest.mark.asyncio
async def test_silence_stream_end_and_length_limit_end_utterances(standin: StandIn) -> None:
    async with connect(standin) as session:
        # 0.4 s of silent audio after speech ends the utterance; later silence is counted only.
        await send_audio(session, pcm_tone(880, 0.5) + bytes(19200))
        turn = await collect_turn(session)
        assert "".join(fragments(turn, "input_transcription")).startswith("(heard 0.5 s ")
        assert output_text(turn) == f"I heard 0.5 s of audio. {summary(audio_s='0.9')}"

        standin.behaviour.speech_gap_s = 30.0
        await send_audio(session, pcm_tone(300, 0.3))
        await session.send_realtime_input(audio_stream_end=True)
        turn = await collect_turn(session)
        assert output_text(turn).startswith("I heard 0.3 s of audio. ")

        standin.behaviour.max_utterance_s = 0.5
        standin.behaviour.barge_in = False  # the tone goes on while the first reply plays
        await send_audio(session, pcm_tone(300, 0.8))
        first = await collect_turn(session)
        await session.send_realtime_input(audio_stream_end=True)
        second = await collect_turn(session)
    assert output_text(first) == f"I heard 0.5 s of audio. {summary(audio_s='1.9')}"
    assert output_text(second) == f"I heard 0.3 s of audio. {summary(audio_s='2.2')}"


@pytest.mark.asyncio
async def test_interrupt_stops_the_reply_and_completes_the_turn(standin: StandIn) -> None:
    fixed_usage(standin, 100, 50)
    standin.behaviour.reply_audio_s = 2.0
    standin.behaviour.chunk_interval_s = 0.05
    interrupted: list[types.LiveServerMessage] = []
    async with connect(standin) as session:
        await session.send_realtime_input(text="Tell me a long story")
        async with asyncio.timeout(5):
            async for message in session.receive():
                interrupted.append(message)
                if len(interrupted) == 1:
                    await standin.interrupt()
        standin.behaviour.reply_audio_s = 0.6
        standin.behaviour.chunk_interval_s = 0.0
        await session.send_realtime_input(text="Short one")
        after = await collect_turn(session)

    # receive() ended at the turnComplete that follows interrupted: one turn.
    assert interrupted[-2].server_content.interrupted is True
    assert interrupted[-1].server_content.turn_complete is True
    assert interrupted[-1].usage_metadata.total_token_count == 150
    assert 1 <= len(model_parts(interrupted)) < 20
    assert not any(m.server_content.generation_complete for m in interrupted)
    assert sum(bool(m.usage_metadata) for m in interrupted) == 1
    assert output_text(after) == f'You said: "Short one". {summary()}'  # nothing left over
    replies = standin.connections[0].replies
    cut = replies.index({"serverContent": {"interrupted": True}})
    assert not any("usageMetadata" in reply for reply in replies[:cut])
    assert replies[cut + 1] == IDLE_WITH_USAGE
    assert sum("usageMetadata" in reply for reply in replies) == 2


@pytest.mark.asyncio
async def test_pushed_messages_arrive_and_tool_responses_are_recorded(standin: StandIn) -> None:
    call = {"id": "call-1", "name": "lookup", "args": {"query_text": "x", "top_k": 2}}
    async with connect(standin) as session:
        await standin.push({"toolCall": {"functionCalls": [call]}})
        message = await next_message(session)
        assert message.tool_call.function_calls[0].model_dump(exclude_none=True) == call
        response = types.FunctionResponse(id="call-1", name="lookup", response={"result_value": 42})
        await session.send_tool_response(function_responses=[response])
        await standin.wait_for(lambda: standin.connections[0].tool_responses)
        pushed = {
            "goAway": {"timeLeft": "5s"},
            "sessionResumptionUpdate": {"newHandle": "handle-7", "resumable": True},
        }
        await standin.push(pushed, connection=0)
        message = await next_message(session)

    assert message.go_away.time_left == "5s"
    assert message.session_resumption_update.new_handle == "handle-7"
    record = standin.connections[0]
    assert record.replies[-1] == pushed
    # User-defined keys (function args and responses) are kept exactly as sent.
    assert record.tool_responses == [
        {"id": "call-1", "name": "lookup", "response": {"result_value": 42}}
    ]


@pytest.mark.asyncio
async def test_scripted_tool_calls_are_answered_cancelled_and_waited_for(
    standin: StandIn,
) -> None:
    async with connect(standin) as session:
        first = await standin.call_tool("lookup", {"query_text": "x"})
        message = await next_message(session)
        call = {"id": first, "name": "lookup", "args": {"query_text": "x"}}
        assert message.tool_call.function_calls[0].model_dump(exclude_none=True) == call
        await session.send_tool_response(function_responses=function_response(first, "lookup", n=4))
        assert await standin.wait_for_tool_response(first) == {
            "id": first, "name": "lookup", "response": {"n": 4},
        }  # fmt: skip
        # A response to one of its own calls gets a reply turn quoting it.
        assert output_text(await collect_turn(session)) == 'Function lookup returned {"n": 4}.'

        assert await standin.call_tool("lookup", {}, call_id="mine") == "mine"
        await next_message(session)
        await standin.cancel_tool_calls(["mine"])
        message = await next_message(session)
        assert message.tool_call_cancellation.ids == ["mine"]
        # A late response is recorded, but gets no reply: the next turn is the text's.
        await session.send_tool_response(function_responses=function_response("mine", "lookup"))
        await session.send_realtime_input(text="next")
        assert output_text(await collect_turn(session)).startswith('You said: "next".')
        with pytest.raises(TimeoutError, match="tool_calls=2 tool_responses=2"):
            await standin.wait_for_tool_response("never-called", timeout=0.1)

    record = standin.connections[0]
    assert [c["id"] for c in record.tool_calls] == [first, "mine"]
    assert record.tool_cancellations == ["mine"]
    assert [r["id"] for r in record.tool_responses] == [first, "mine"]
    assert standin.tool_responses("mine") == [(0, {"id": "mine", "name": "lookup", "response": {}})]
    assert standin.pending_tool_calls == {}


@pytest.mark.asyncio
async def test_the_note_trigger_makes_the_model_call_save_note(standin: StandIn) -> None:
    # A model whose calls block by default: the call is all the turn says until the response.
    async with connect(standin, BLOCKING_MODEL) as session:
        await session.send_realtime_input(text="Please NOTE: Standup | Move it to 10:30")
        message = await next_message(session)
        [call] = message.tool_call.function_calls
        assert (call.name, call.args) == (
            "save_note",
            {"title": "Standup", "body": "Move it to 10:30"},
        )
        await session.send_tool_response(
            function_responses=function_response(call.id, "save_note", result="saved")
        )
        turn = await collect_turn(session)
        assert output_text(turn) == 'Function save_note returned {"result": "saved"}.'

        long_text = "remember " * 12
        await session.send_realtime_input(text=f"note:{long_text}")
        message = await next_message(session)
        [call] = message.tool_call.function_calls
        assert call.args == {"title": long_text.strip()[:60].strip(), "body": long_text.strip()}

        standin.behaviour.note_trigger = None
        await session.send_realtime_input(text="note: not a call now")
        assert 'You said: "note: not a call now"' in output_text(await collect_turn(session))


@pytest.mark.asyncio
async def test_disconnect_and_wait_for_timeout_message(standin: StandIn) -> None:
    async with connect(standin) as session:
        await standin.disconnect(code=4001, reason="test over")
        with pytest.raises(errors.APIError) as info:
            await next_message(session)
    assert info.value.code == 4001
    await standin.wait_for(lambda: standin.connections[0].closed)
    assert standin.connections[0].close_code == 4001
    with pytest.raises(RuntimeError, match="closed"):
        await standin.push({"goAway": {}})
    with pytest.raises(TimeoutError, match=r"not met within 0\.1 s.*#0 closed"):
        await standin.wait_for(lambda: len(standin.connections) == 2, timeout=0.1)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("payloads", "reason", "recorded"),
    [
        (["{not json"], "Invalid JSON payload received.", {"malformed": "{not json"}),
        (["[1, 2]"], "Invalid JSON payload received.", {"malformed": "[1, 2]"}),
        (['{"dance": {}}'], "Unknown or invalid client message 'dance'.", {"dance": {}}),
        (
            ['{"realtime_input": {"audio": {"data": "***"}}}'],
            "realtimeInput.audio data is not valid base64.",
            {"realtimeInput": {"audio": {"data": "***"}}},
        ),
    ],
)
async def test_invalid_input_is_recorded_and_closed_with_1007(
    standin: StandIn, payloads: list[str], reason: str, recorded: dict[str, Any]
) -> None:
    uri = standin.base_url.replace("https://", "wss://") + PATH
    data = bytes(range(256)) * 2
    async with websockets.connect(uri, ssl=standin.client_ssl_context()) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        # The standard base64 alphabet is accepted too, as is the legacy mediaChunks.
        chunk = {"data": base64.b64encode(data).decode(), "mime_type": PCM16K}
        await ws.send(json.dumps({"realtimeInput": {"mediaChunks": [chunk]}}))
        for payload in payloads:
            await ws.send(payload)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1007, reason)
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert record.audio == [(PCM16K, data)]
    assert record.messages[-1] == recorded
    assert (record.close_code, record.close_reason, record.had_api_key) == (1007, reason, False)


@pytest.mark.asyncio
async def test_first_message_must_be_setup_and_unknown_paths_get_404(standin: StandIn) -> None:
    base = standin.base_url.replace("https://", "wss://")
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(base + "/ws/other", ssl=standin.client_ssl_context()):
            pass
    assert info.value.response.status_code == 404
    assert standin.connections == []
    async with websockets.connect(base + PATH, ssl=standin.client_ssl_context()) as ws:
        await ws.send(json.dumps({"realtimeInput": {"text": "hi"}}))
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 1007
    assert standin.connections[0].setup is None


@pytest.mark.asyncio
async def test_record_limits_bound_memory_but_not_behaviour(tmp_path: Path) -> None:
    async with StandIn(tls_dir=tmp_path, record_limit_bytes=0, keep_closed_records=1) as server:
        async with connect(server) as session:
            await send_audio(session, pcm_tone(440, 0.5))
            await session.send_realtime_input(audio_stream_end=True)
            turn = await collect_turn(session)
        assert output_text(turn) == f"I heard 0.5 s of audio. {summary(audio_s='0.5')}"
        record = server.connections[0]
        assert (record.audio, record.messages, record.replies) == ([], [], [])
        assert record.truncated is True

    async with StandIn(tls_dir=tmp_path, keep_closed_records=1) as server:
        for text in ("one", "two"):
            async with connect(server) as session:
                await session.send_realtime_input(text=text)
                await collect_turn(session)
        await server.wait_for(lambda: all(c.closed for c in server.connections))
        first, second = server.connections
        assert (first.truncated, first.replies, first.texts) == (True, [], ["one"])
        # setupComplete, 6 audio chunks and 6 transcription fragments, the IN_PROGRESS
        # turnComplete, generationComplete and the final turnComplete.
        assert (second.truncated, len(second.replies)) == (False, 16)


@pytest.mark.asyncio
async def test_stand_ins_sharing_a_tls_dir_share_one_ca(tmp_path: Path) -> None:
    async with StandIn(tls_dir=tmp_path) as first:
        ca, old_context = first.ca_path.read_bytes(), first.client_ssl_context()
    async with StandIn(tls_dir=tmp_path) as second:
        assert second.ca_path.read_bytes() == ca
        client = make_client_for(second.base_url, old_context)  # e.g. cached by the project
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            assert session.setup_complete is not None
    async with StandIn(tls_dir=tmp_path, cert_hosts=["standin.internal"]) as third:
        assert third.ca_path.read_bytes() != ca  # other names: a new certificate and CA
    assert (tmp_path / "server-key.pem").stat().st_mode & 0o777 == 0o600


def test_threaded_standin_serves_sync_code(tmp_path: Path) -> None:
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=tmp_path) as threaded:
        assert threaded.ca_path == tmp_path / "ca.pem"

        async def talk() -> tuple[list[types.LiveServerMessage], types.LiveServerMessage]:
            async with connect(threaded) as session:
                await session.send_realtime_input(text="from a thread")
                turn = await collect_turn(session)
                await asyncio.to_thread(threaded.push, {"goAway": {"timeLeft": "1s"}})
                return turn, await next_message(session)

        turn, pushed = asyncio.run(talk())
        threaded.wait_for(lambda: threaded.connections[0].closed)
        snapshot = threaded.connections
        snapshot[0].texts.append("changed by the test")
        assert threaded.connections[0].texts == ["from a thread"]
        assert output_text(turn) == f'You said: "from a thread". {summary()}'
        assert pushed.go_away.time_left == "1s"
        assert snapshot[0].replies[-1] == {"goAway": {"timeLeft": "1s"}}
        with pytest.raises(TimeoutError, match="#0 closed"):
            threaded.wait_for(lambda: len(threaded.connections) == 2, timeout=0.1)
    assert not [t for t in threading.enumerate() if t.name == "gemini-live-standin"]


@pytest.mark.asyncio
async def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "standin", "--port", "0",
        "--tls-dir", str(tmp_path), "--reply-audio-s", "0.2", "--log-level", "WARNING",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"stand-in listening on (https://127\.0\.0\.1:\d+) ca=(.+)\n", line)
        assert match, line
        assert match[2] == str(tmp_path / "ca.pem")
        client = make_client_for(match[1], ssl.create_default_context(cafile=match[2]))
        async with client.aio.live.connect(model=MODEL, config=live_config()) as session:
            await session.send_realtime_input(text="over the process boundary")
            turn = await collect_turn(session)
        assert output_text(turn) == f'You said: "over the process boundary". {summary()}'
        assert len(model_parts(turn)) == 2
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
