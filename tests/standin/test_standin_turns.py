"""What the stand-in's turns look like on every model, as today's service sends them.

Interrupted turns end with a turnComplete, input transcription comes late and split,
usage totals include thoughts and tool use, refused input gets a turnCompleteReason, 3.8
replies are split by an IN_PROGRESS turnComplete; unknown message kinds and malformed
frames can be scripted, and the real SDK's reaction to them is shown.
"""

import json
import math
from typing import Any

import pytest
from google.genai import types

from standin import StandIn
from standin.profiles import PROFILES
from tests.standin.sdk import (
    FOUR_MODELS,
    audio_config,
    collect_turn,
    connect,
    fixed_usage,
    fragments,
    kinds,
    next_message,
    output_text,
    pcm_tone,
    raw_session,
    send_audio,
    summary,
    text_turn,
)

THREE_EIGHT, NATIVE = "gemini-3.8-live", "gemini-2.5-flash-native-audio-preview-12-2025"


def slow(standin: StandIn) -> None:
    """Replies long and paced enough to be cut while they play."""
    standin.behaviour.reply_audio_s = 2.0
    standin.behaviour.chunk_interval_s = 0.05


def status(profile_has_it: bool, value: str) -> dict[str, Any]:
    """The interactionStatus field a turnComplete has on a model, if any."""
    return {"interactionStatus": value} if profile_has_it else {}


@pytest.mark.asyncio
@pytest.mark.parametrize("model", FOUR_MODELS)
async def test_interrupt_sends_interrupted_then_turn_complete(standin: StandIn, model: str) -> None:
    fixed_usage(standin, 100, 50)
    slow(standin)
    async with connect(standin, model) as session:
        await session.send_realtime_input(text="a long one")
        await next_message(session)
        await standin.interrupt()
        rest = await collect_turn(session)  # ends at the interrupted turn's turnComplete
        standin.behaviour.chunk_interval_s = 0.0
        after = await text_turn(session, "short")

    profile = PROFILES[model]
    assert rest[-2].server_content.interrupted is True
    assert rest[-1].server_content.turn_complete is True
    assert rest[-1].usage_metadata.prompt_token_count == 100
    replies = standin.connections[0].replies
    at = replies.index({"serverContent": {"interrupted": True}})
    assert replies[at + 1]["serverContent"] == {
        "turnComplete": True, **status(profile.interaction_status, "IDLE")
    }  # fmt: skip
    assert "usageMetadata" in replies[at + 1]
    assert "generationComplete" not in kinds(replies[:at])
    assert output_text(after) == f'You said: "short". {summary()}'


@pytest.mark.asyncio
async def test_speech_while_the_model_speaks_is_a_barge_in(standin: StandIn) -> None:
    slow(standin)
    async with connect(standin, NATIVE) as session:
        await session.send_realtime_input(text="keep talking")
        await next_message(session)
        await send_audio(session, pcm_tone(440, 0.3))
        cut = await collect_turn(session)
        standin.behaviour.chunk_interval_s = 0.0
        await session.send_realtime_input(audio_stream_end=True)
        answer = await collect_turn(session)

    assert [m.server_content.interrupted for m in cut[-2:]] == [True, None]
    assert cut[-1].server_content.turn_complete is True
    assert output_text(answer) == f"I heard 0.3 s of audio. {summary(audio_s='0.3')}"


@pytest.mark.asyncio
async def test_barge_in_off_lets_the_reply_finish(standin: StandIn) -> None:
    slow(standin)
    standin.behaviour.barge_in = False
    async with connect(standin, NATIVE) as session:
        await session.send_realtime_input(text="keep talking")
        first = await next_message(session)
        await send_audio(session, pcm_tone(440, 0.3))
        whole = [first, *await collect_turn(session)]

    assert output_text(whole) == f'You said: "keep talking". {summary()}'
    assert "interrupted" not in kinds(standin.connections[0].replies)


@pytest.mark.asyncio
@pytest.mark.parametrize("model", FOUR_MODELS)
async def test_input_transcription_arrives_late_and_split(standin: StandIn, model: str) -> None:
    async with connect(standin, model) as session:
        await send_audio(session, pcm_tone(440, 0.5))
        await session.send_realtime_input(audio_stream_end=True)
        turn = await collect_turn(session)

    heard = fragments(turn, "input_transcription")
    assert len(heard) >= 2
    assert "".join(heard).startswith("(heard 0.5 s of audio")
    sent = kinds(standin.connections[0].replies)
    assert sent[1] == "in"  # the first fragment before the reply...
    first_audio = sent.index("audio")
    assert sent.index("in", first_audio) > first_audio  # ...the last one within it
    assert len([kind for kind in sent[first_audio:] if kind == "in"]) == len(heard) - 1


@pytest.mark.asyncio
async def test_an_interrupted_turn_still_sends_the_users_last_words(standin: StandIn) -> None:
    standin.behaviour.chunk_interval_s = 1.0  # the interrupt comes within the first step
    async with connect(standin, THREE_EIGHT) as session:
        await send_audio(session, pcm_tone(440, 0.5))
        await session.send_realtime_input(audio_stream_end=True)
        opening = [await next_message(session) for _ in range(2)]
        await standin.interrupt()
        rest = await collect_turn(session)

    sent = kinds(standin.connections[0].replies)
    assert sent == ["setupComplete", "in", "audio", "out", "in", "interrupted", "in", "complete"]
    assert opening[1].server_content.model_turn is not None
    heard = "".join(fragments([*opening, *rest], "input_transcription"))
    assert heard.startswith("(heard 0.5 s of audio at about ")
    assert heard.endswith(" Hz)")


@pytest.mark.asyncio
async def test_thinking_and_tool_use_tokens_count_in_the_total(standin: StandIn) -> None:
    fixed_usage(standin, 100, 50)
    standin.behaviour.thoughts_tokens_per_turn = 7
    standin.behaviour.tool_use_tokens_per_turn = 3
    thinking = types.ThinkingConfig(thinking_level=types.ThinkingLevel.MEDIUM)
    config = audio_config(thinking_config=thinking)
    async with connect(standin, "gemini-3.8-live-extended-thinking", config) as session:
        plain = await text_turn(session, "think")
        call_id = await standin.call_tool("lookup", {})
        await next_message(session)
        response = types.FunctionResponse(id=call_id, name="lookup", response={"r": 1})
        await session.send_tool_response(function_responses=[response])
        answered = await collect_turn(session)

    first, second = plain[-1].usage_metadata, answered[-1].usage_metadata
    assert (first.thoughts_token_count, first.tool_use_prompt_token_count) == (7, None)
    assert first.total_token_count == 100 + 50 + 7
    assert (second.thoughts_token_count, second.tool_use_prompt_token_count) == (7, 3)
    assert second.total_token_count == 100 + 50 + 7 + 3
    assert standin.connections[0].replies[-1]["usageMetadata"] == {
        "promptTokenCount": 100,
        "responseTokenCount": 50,
        "totalTokenCount": 160,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 100}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
        "thoughtsTokenCount": 7,
        "toolUsePromptTokenCount": 3,
        "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("model", FOUR_MODELS)
async def test_refused_input_gets_only_a_turn_complete_with_its_reason(
    standin: StandIn, model: str
) -> None:
    async with connect(standin, model) as session:
        turn = await text_turn(session, "Please REFUSE: this")
        after = await text_turn(session, "fine")

    profile = PROFILES[model]
    prompt = math.ceil(len("Please REFUSE: this") / 4)  # billed although refused
    assert len(turn) == 1
    assert (
        turn[0].server_content.turn_complete_reason
        == types.TurnCompleteReason.PROHIBITED_INPUT_CONTENT
    )
    assert turn[0].server_content.model_turn is None
    assert standin.connections[0].replies[1] == {
        "serverContent": {
            "turnComplete": True,
            "turnCompleteReason": "PROHIBITED_INPUT_CONTENT",
            **status(profile.interaction_status, "IDLE"),
        },
        "usageMetadata": {
            "promptTokenCount": prompt,
            "responseTokenCount": 0,
            "totalTokenCount": prompt,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        },
    }
    assert output_text(after).startswith('You said: "fine".')


@pytest.mark.asyncio
async def test_in_progress_split_on_and_off(standin: StandIn) -> None:
    async with connect(standin, THREE_EIGHT) as session:
        split = await text_turn(session, "one")
        standin.behaviour.in_progress_split = False
        whole = await text_turn(session, "two")

    statuses = [
        m.server_content.interaction_status for m in split if m.server_content.turn_complete
    ]
    assert statuses == [types.InteractionStatus.IN_PROGRESS, types.InteractionStatus.IDLE]
    at = next(i for i, m in enumerate(split) if m.server_content.turn_complete)
    assert output_text(split[:at])  # output on both sides of it
    assert output_text(split[at:])
    assert split[at].usage_metadata is None
    assert [
        m.server_content.interaction_status for m in whole if m.server_content.turn_complete
    ] == [types.InteractionStatus.IDLE]


@pytest.mark.asyncio
async def test_an_unknown_message_kind_makes_the_sdk_raise_type_error(standin: StandIn) -> None:
    async with connect(standin) as session:
        await standin.push_unknown()
        with pytest.raises(TypeError):
            await next_message(session)
        await standin.push_unknown("voiceNote", {"text": "x"})
        with pytest.raises(TypeError):
            await next_message(session)
        turn = await text_turn(session, "still there?")  # the connection itself is fine

    assert standin.connections[0].replies[1:3] == [
        {"sessionWarning": {}},
        {"voiceNote": {"text": "x"}},
    ]
    assert output_text(turn).startswith('You said: "still there?".')


@pytest.mark.asyncio
async def test_malformed_json_makes_the_sdk_raise_value_error(standin: StandIn) -> None:
    async with connect(standin) as session:
        await standin.push_raw('{"serverContent": ')
        with pytest.raises(ValueError, match="Failed to parse response"):
            await next_message(session)

    assert standin.connections[0].replies[-1] == {"raw": '{"serverContent": '}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "value", "sent"),
    [
        ("unknown_kind_mid_reply", "sessionWarning", {"sessionWarning": {}}),
        ("malformed_mid_reply", True, {"raw": '{"serverContent": '}),
    ],
)
async def test_mid_reply_faults_come_once_in_the_middle_of_every_reply(
    standin: StandIn, fault: str, value: Any, sent: dict[str, Any]
) -> None:
    setattr(standin.behaviour, fault, value)
    ws = await raw_session(standin, {"model": f"models/{NATIVE}", "outputAudioTranscription": {}})
    async with ws:
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        frames = []
        for text in ("one", "two"):
            await ws.send(json.dumps({"realtimeInput": {"text": text}}))
            frames.append(await ws.recv())
            while '"usageMetadata"' not in frames[-1]:
                frames.append(await ws.recv())

    replies = standin.connections[0].replies
    raw = sent.get("raw")
    assert frames.count(raw if raw else json.dumps(sent, separators=(",", ":"))) == 2
    half, end = ["audio", "out"] * 3, ["generationComplete", "complete"]
    reply = [*half, *kinds([sent]), *half, *end]
    assert kinds(replies) == ["setupComplete", *reply, *reply]
    assert replies.count(sent) == 2


@pytest.mark.asyncio
async def test_the_sdk_fails_on_a_mid_reply_unknown_kind(standin: StandIn) -> None:
    standin.behaviour.unknown_kind_mid_reply = "sessionWarning"
    received: list[types.LiveServerMessage] = []
    async with connect(standin, NATIVE) as session:
        await session.send_realtime_input(text="hi")
        with pytest.raises(TypeError):
            await receive_into(session, received)

    assert 0 < len([m for m in received if m.server_content.model_turn]) < 6


async def receive_into(session: Any, received: list[types.LiveServerMessage]) -> None:
    """Append the messages of one turn to ``received``."""
    async for message in session.receive():
        received.append(message)
