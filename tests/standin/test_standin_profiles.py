"""Model profiles and setup validation of the stand-in, through the real SDK.

Every current model id serves a normal audio turn; retired and unknown ids, TEXT replies
and each setting a model refuses close the setup as today's service does. Turn
coverage decides which frames count toward the synthetic model's context.
"""

import json
import math
from typing import Any

import pytest
from google.genai import types
from websockets.exceptions import ConnectionClosedError

from standin import StandIn
from standin.profiles import DEFAULT_MODEL, PROFILES, RETIRED
from tests.standin.sdk import (
    FOUR_MODELS,
    PCM16K,
    audio_config,
    audio_parts,
    collect_turn,
    connect,
    frame,
    jpeg,
    kinds,
    output_text,
    pcm_tone,
    raw_session,
    refused,
    summary,
    text_turn,
)

NOT_FOUND = "is not found for API version v1beta, or is not supported for bidiGenerateContent."


def test_the_four_profiles_and_the_retired_ids() -> None:
    assert set(PROFILES) == set(FOUR_MODELS)
    assert DEFAULT_MODEL == "gemini-3.8-live"
    assert {"gemini-2.0-flash-live-001", "gemini-live-2.5-flash-preview"} < RETIRED
    assert "gemini-2.5-flash-native-audio-preview-09-2025" in RETIRED
    assert len(RETIRED) == 3
    assert not RETIRED & set(PROFILES)
    table = {
        model: (
            p.tool_behaviour, p.default_behaviour, p.default_turn_coverage, p.thinking,
            p.proactive_audio_always_on, p.affective_dialog, p.interaction_status,
            p.media_resolution,
        )
        for model, p in PROFILES.items()
    }  # fmt: skip
    everything = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"
    activity = "TURN_INCLUDES_ONLY_ACTIVITY"
    assert table == {
        "gemini-3.8-live": (
            "NON_BLOCKING", "NON_BLOCKING", everything, False, True, False, True, True
        ),
        "gemini-3.8-live-extended-thinking": (
            "NON_BLOCKING_ONLY", "NON_BLOCKING", everything, True, True, False, True, True
        ),
        "gemini-2.5-flash-native-audio-preview-12-2025": (
            "BLOCKING", "BLOCKING", activity, False, False, True, False, True
        ),
        "gemini-3.1-flash-live-preview": (
            "BLOCKING_ONLY", "BLOCKING", activity, False, False, True, False, False
        ),
    }  # fmt: skip
    three_eight = PROFILES["gemini-3.8-live"]
    assert three_eight.accepts_behaviour("BLOCKING")
    assert three_eight.accepts_behaviour("NON_BLOCKING")
    assert not PROFILES["gemini-3.8-live-extended-thinking"].accepts_behaviour("BLOCKING")
    assert not PROFILES["gemini-3.1-flash-live-preview"].accepts_behaviour("NON_BLOCKING")


@pytest.mark.asyncio
@pytest.mark.parametrize("model", FOUR_MODELS)
async def test_a_normal_audio_turn_on_every_current_model(standin: StandIn, model: str) -> None:
    async with connect(standin, model) as session:
        assert session.setup_complete is not None
        turn = await text_turn(session, "Hello")

    profile = PROFILES[model]
    record = standin.connections[0]
    assert record.setup["model"] == f"models/{model}"
    assert (record.profile, record.turn_coverage) == (profile, profile.default_turn_coverage)
    assert record.replies[0] == {"setupComplete": {}}
    assert output_text(turn) == f'You said: "Hello". {summary()}'
    assert [len(data) for data in audio_parts(turn)] == [4800] * 6
    final = turn[-1]
    assert final.server_content.turn_complete is True
    usage = final.usage_metadata
    thoughts = 20 if profile.thinking else None
    # About 4 characters a text token; 32 tokens a second of the 0.6 s reply.
    prompt, response = math.ceil(len("Hello") / 4), round(32 * 0.6)
    assert (usage.prompt_token_count, usage.response_token_count) == (prompt, response)
    assert usage.thoughts_token_count == thoughts
    assert usage.total_token_count == prompt + response + (thoughts or 0)
    statuses = [m.server_content.interaction_status for m in turn if m.server_content.turn_complete]
    if profile.interaction_status:  # receive() went on past IN_PROGRESS, stopped at IDLE
        assert statuses == [types.InteractionStatus.IN_PROGRESS, types.InteractionStatus.IDLE]
    else:
        assert statuses == [None]
        assert "in_progress" not in kinds(record.replies)


def not_found(model: str, version: str = "v1beta") -> str:
    """The reason a setup naming ``model`` is closed with, as a close frame holds it."""
    full = f"models/{model} {NOT_FOUND.replace('v1beta', version)}"
    return full.encode()[:123].decode()


@pytest.mark.asyncio
@pytest.mark.parametrize("model", [*sorted(RETIRED), "gemini-9-imaginary-live"])
async def test_retired_and_unknown_models_are_closed_with_1008(
    standin: StandIn, model: str
) -> None:
    error = await refused(standin, model)

    reason = not_found(model)
    assert (error.code, error.details) == (1008, reason)
    if len(model) <= 34:  # the whole reason fits in a close frame
        assert reason == f"models/{model} {NOT_FOUND}"
    else:  # cut to 123 bytes, as the service's own close reasons are
        assert len(reason.encode()) == 123
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert (record.close_code, record.close_reason) == (1008, reason)
    assert (record.profile, record.replies, record.setup_complete_at) == (None, [], None)


@pytest.mark.asyncio
async def test_the_api_version_in_the_reason_comes_from_the_path(standin: StandIn) -> None:
    path = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
    ws = await raw_session(standin, {"model": "models/gemini-live-2.5-flash-preview"}, path)
    with pytest.raises(ConnectionClosedError) as info:
        await ws.recv()

    assert (info.value.rcvd.code, info.value.rcvd.reason) == (
        1008,
        "models/gemini-live-2.5-flash-preview is not found for API version v1alpha,"
        " or is not supported for bidiGenerateContent.",
    )


def thinking(level: str) -> types.ThinkingConfig:
    """A thinking configuration with ``level``."""
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(level))


def declaring(behavior: str) -> dict[str, Any]:
    """Config fields declaring one function with ``behavior``."""
    function = types.FunctionDeclaration(name="lookup", behavior=types.Behavior(behavior))
    return {"tools": [types.Tool(function_declarations=[function])]}


THREE_EIGHT, THINKING = "gemini-3.8-live", "gemini-3.8-live-extended-thinking"
NATIVE, LEGACY = "gemini-2.5-flash-native-audio-preview-12-2025", "gemini-3.1-flash-live-preview"
NO_PROACTIVE = {"proactivity": types.ProactivityConfig(proactive_audio=False)}
REFUSED = [
    (THREE_EIGHT, {"thinking_config": thinking("LOW")},
     "thinking_config.thinking_level is not supported for models/gemini-3.8-live."),
    (NATIVE, {"thinking_config": thinking("HIGH")},
     f"thinking_config.thinking_level is not supported for models/{NATIVE}."),
    (THINKING, {"thinking_config": thinking("MINIMAL")},
     f"thinking_level must be LOW, MEDIUM or HIGH for models/{THINKING}."),
    (THREE_EIGHT, NO_PROACTIVE,
     "proactivity.proactive_audio cannot be disabled for models/gemini-3.8-live."),
    (THINKING, NO_PROACTIVE,
     f"proactivity.proactive_audio cannot be disabled for models/{THINKING}."),
    (THREE_EIGHT, {"enable_affective_dialog": False},
     "enable_affective_dialog is not supported for models/gemini-3.8-live."),
    (THINKING, declaring("BLOCKING"),
     f"function_declarations.behavior BLOCKING is not supported for models/{THINKING}."),
    (LEGACY, declaring("NON_BLOCKING"),
     f"function_declarations.behavior NON_BLOCKING is not supported for models/{LEGACY}."),
    (LEGACY, {"media_resolution": types.MediaResolution.MEDIA_RESOLUTION_LOW},
     f"media_resolution is not supported for models/{LEGACY}."),
]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize(("model", "fields", "reason"), REFUSED)
async def test_settings_a_model_refuses_close_with_1007_naming_the_field(
    standin: StandIn, model: str, fields: dict[str, Any], reason: str
) -> None:
    error = await refused(standin, model, audio_config(**fields))

    assert (error.code, error.details) == (1007, reason)  # whole: it fits in a close frame
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert (record.close_code, record.close_reason, record.replies) == (1007, reason, [])
    assert record.profile is PROFILES[model]


ACCEPTED = [
    (THINKING, {"thinking_config": thinking("LOW")}, "thinking_level", "LOW"),
    (THINKING, {"thinking_config": thinking("HIGH")}, "thinking_level", "HIGH"),
    (THREE_EIGHT, {"thinking_config": types.ThinkingConfig(include_thoughts=True)},
     "thinking_level", None),
    (THREE_EIGHT, {"proactivity": types.ProactivityConfig(proactive_audio=True)},
     "thinking_level", None),
    (NATIVE, {"enable_affective_dialog": True, **NO_PROACTIVE}, "thinking_level", None),
    (THREE_EIGHT, {"media_resolution": types.MediaResolution.MEDIA_RESOLUTION_LOW},
     "media_resolution", "MEDIA_RESOLUTION_LOW"),
    (THREE_EIGHT, declaring("BLOCKING"), "thinking_level", None),
    (NATIVE, declaring("NON_BLOCKING"), "thinking_level", None),
    (LEGACY, declaring("BLOCKING"), "thinking_level", None),
]  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize(("model", "fields", "field", "recorded"), ACCEPTED)
async def test_settings_a_model_takes_are_accepted_and_recorded(
    standin: StandIn, model: str, fields: dict[str, Any], field: str, recorded: str | None
) -> None:
    async with connect(standin, model, audio_config(**fields)) as session:
        turn = await text_turn(session, "ok?")

    assert output_text(turn).startswith('You said: "ok?".')
    assert getattr(standin.connections[0], field) == recorded


@pytest.mark.asyncio
async def test_only_activity_coverage_leaves_idle_frames_out_of_the_context(
    standin: StandIn,
) -> None:
    standin.behaviour.activity_window_s = 0.0  # no look-back: only frames during activity
    async with connect(standin, NATIVE) as session:
        await session.send_realtime_input(video=frame((64, 48)))
        idle = await text_turn(session, "see it?")
        await session.send_realtime_input(
            audio=types.Blob(data=pcm_tone(440, 0.2), mime_type=PCM16K)
        )
        await session.send_realtime_input(video=frame((80, 60)))  # while the user speaks
        await session.send_realtime_input(audio_stream_end=True)
        spoken = await collect_turn(session)
        picture = types.Part.from_bytes(data=jpeg((32, 16)), mime_type="image/jpeg")
        parts = [types.Part(text="and this?"), picture]
        await session.send_client_content(turns=types.Content(role="user", parts=parts))
        explicit = await collect_turn(session)

    record = standin.connections[0]
    assert record.turn_coverage == "TURN_INCLUDES_ONLY_ACTIVITY"
    assert [len(data) for _, data in record.frames] == [
        len(jpeg((64, 48))),
        len(jpeg((80, 60))),
        len(jpeg((32, 16))),
    ]
    assert output_text(idle) == f'You said: "see it?". {summary()}'  # recorded, not counted
    assert (
        output_text(spoken)
        == f"I heard 0.2 s of audio. {summary('1 frames (latest 80x60)', '0.2')}"
    )
    # A frame inside a client turn is part of the turn itself.
    frames = "2 frames (latest 32x16)"
    assert output_text(explicit) == f'You said: "and this?". {summary(frames, "0.2")}'


@pytest.mark.asyncio
async def test_frames_just_before_a_text_count_under_only_activity(standin: StandIn) -> None:
    async with connect(standin, NATIVE) as session:  # activity_window_s: 1 s by default
        await session.send_realtime_input(video=frame((64, 48)))
        turn = await text_turn(session, "what is on screen?")

    assert (
        output_text(turn) == f'You said: "what is on screen?". {summary("1 frames (latest 64x48)")}'
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("model", "coverage"),
    [
        (THREE_EIGHT, None),  # its default: every frame
        (NATIVE, types.TurnCoverage.TURN_INCLUDES_ALL_INPUT),
        (LEGACY, types.TurnCoverage.TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO),
    ],
)
async def test_other_coverages_count_every_frame(
    standin: StandIn, model: str, coverage: types.TurnCoverage | None
) -> None:
    standin.behaviour.activity_window_s = 0.0
    realtime = types.RealtimeInputConfig(turn_coverage=coverage) if coverage else None
    async with connect(standin, model, audio_config(realtime_input_config=realtime)) as session:
        await session.send_realtime_input(video=frame((64, 48)))
        await session.send_realtime_input(video=frame((32, 16)))
        turn = await text_turn(session, "see them?")

    expected = coverage.value if coverage else "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"
    assert standin.connections[0].turn_coverage == expected
    assert output_text(turn) == f'You said: "see them?". {summary("2 frames (latest 32x16)")}'


@pytest.mark.asyncio
async def test_an_invalid_enum_value_is_refused_with_1007(standin: StandIn) -> None:
    setup = {"model": f"models/{THREE_EIGHT}", "realtimeInputConfig": {"turnCoverage": "ALL"}}
    ws = await raw_session(standin, setup)
    with pytest.raises(ConnectionClosedError) as info:
        await ws.recv()
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (
        1007,
        "Invalid value for turn_coverage: 'ALL'.",
    )
    assert json.loads(json.dumps(standin.connections[0].setup)) == setup
