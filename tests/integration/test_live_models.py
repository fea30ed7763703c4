"""The relay on each of today's Live models, as the stand-in's model profiles serve them.

Full ASGI stack, the real google-genai SDK over TLS, and a stand-in that behaves as the
service is documented to: audio-only replies, the user's transcription arriving late and
in pieces, ``interrupted`` followed by ``turnComplete``, ``IN_PROGRESS`` turns on 3.8,
usage with thinking and tool-use tokens, each model's own tool behaviour and defaults.
"""

import logging
from dataclasses import replace
from typing import Any

import pytest
from django.core import checks

from sessions_app.live import models as live_models
from sessions_app.live.models import MODELS, RETIRED, ToolBehaviour
from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn
from tests.conftest import Browser
from tests.records import (
    USAGE_COUNTS,
    chunks,
    client_messages,
    contents,
    final_turn_completes,
    jpeg,
    sent_audio,
    sent_texts,
    sent_token_counts,
    stored,
    tone,
)

pytestmark = pytest.mark.django_db(transaction=True)

ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"


def check_setup(standin: StandIn, model: str, info: Any) -> tuple[Any, bool]:
    """Check the setup the relay sent for ``model``; return the record and non-blocking."""
    record = standin.connections[0]
    assert record.profile is not None
    assert record.profile.id == model
    setup = record.setup
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert record.turn_coverage == ALL_VIDEO  # set explicitly, whatever the model's default
    assert setup["realtimeInputConfig"]["turnCoverage"] == ALL_VIDEO
    expected_resolution = "MEDIA_RESOLUTION_MEDIUM" if info.media_resolution else None
    assert record.media_resolution == expected_resolution
    [declaration] = setup["tools"][0]["functionDeclarations"]
    non_blocking = info.tool_behaviour is ToolBehaviour.NON_BLOCKING
    assert declaration.get("behavior") == ("NON_BLOCKING" if non_blocking else None)
    return record, non_blocking


async def speak_and_check_late_transcription(browser: Browser, standin: StandIn) -> str:
    """A spoken question: the user's words arrive late, after the reply has begun."""
    for piece in chunks(tone(440, 0.8) + bytes(16000)):
        await browser.send_media(Kind.AUDIO, piece)
    spoken = await browser.expect("turn_complete", timeout=10)
    assert spoken == {"type": "turn_complete", "turn": spoken["turn"]}
    heard = sent_texts(standin, "inputTranscription")
    assert "440 Hz" in heard
    first_model = next(
        i for i, m in enumerate(browser.messages) if m.get("role") == "model" and "turn" in m
    )
    last_user = max(
        i for i, m in enumerate(browser.messages) if m.get("role") == "user" and "turn" in m
    )
    assert last_user > first_model, "the stand-in sent the user's words late"
    assert browser.transcript("user", spoken["turn"]) == heard
    assert b"".join(browser.audio) == sent_audio(standin)
    return heard


async def send_note_and_check_response(
    browser: Browser, standin: StandIn, record: Any, non_blocking: bool
) -> None:
    """A note: non-blocking models get a SILENT response and say nothing more about it."""
    seen = len(browser.messages)
    await browser.send(type="text", text="note: Plan | ship it")
    while not {"note", "turn_complete"} <= {m["type"] for m in browser.messages[seen:]}:
        await browser.next(timeout=10)
    [note] = [m for m in browser.messages[seen:] if m["type"] == "note"]
    assert (note["title"], note["body"]) == ("Plan", "ship it")
    [call] = record.tool_calls
    response = await standin.wait_for_tool_response(call["id"])
    assert response.get("scheduling") == ("SILENT" if non_blocking else None)
    [answered] = [m for m in browser.messages[seen:] if m["type"] == "turn_complete"]
    # Blocking models wait for the response, then speak about it; the others talk on and
    # keep a SILENT response to themselves.
    quoted = "Function save_note returned" in browser.transcript("model", answered["turn"])
    assert quoted is not non_blocking


def check_turns_and_usage(
    browser: Browser,
    standin: StandIn,
    record: Any,
    info: Any,
    last: dict[str, Any],
    shown: dict[str, Any],
) -> dict[str, int]:
    """Check the turn numbering and the usage shown; return the usage the stand-in sent."""
    non_blocking = info.tool_behaviour is ToolBehaviour.NON_BLOCKING
    # One turn_complete per turn the stand-in ended, numbered without a gap.
    done = [m["turn"] for m in browser.messages if m["type"] == "turn_complete"]
    assert done == list(range(1, last["turn"] + 1))
    assert len(done) == len([c for c in final_turn_completes(standin) if not c.get("interrupted")])
    if record.profile.interaction_status:
        assert any(c.get("interactionStatus") == "IN_PROGRESS" for c in contents(standin))
    usage = sent_token_counts(standin)
    if info.thinking:
        assert usage["thoughts_tokens"] > 0
    if not non_blocking:
        assert usage["tool_use_prompt_tokens"] > 0  # the turn that answered the response
    assert usage["total_tokens"] == sum(
        usage[name] for name in USAGE_COUNTS if name != "total_tokens"
    )
    assert {name: shown[name] for name in USAGE_COUNTS} == usage
    return usage


async def check_stored_session(
    session_id: str, model: str, usage: dict[str, int], heard: str
) -> None:
    """Check the stored session's usage, model and transcript lines."""
    session, lines = await stored(session_id)
    assert {name: getattr(session, name) for name in USAGE_COUNTS} == usage
    assert session.model == model
    assert [seq for seq, *_ in lines] == list(range(1, len(lines) + 1))
    assert lines[0] == (1, "user", "speech", heard.strip())  # before the reply it led to
    assert lines[1][1:3] == ("model", "speech")
    assert (2 + 1, "user", "typed", "note: Plan | ship it") in lines
    assert lines[-2] == (len(lines) - 1, "user", "typed", "thanks")
    assert lines[-1][1:3] == ("model", "speech")


@pytest.mark.parametrize("model", sorted(MODELS))
async def test_a_spoken_turn_a_note_and_usage_on_each_model(
    standin: StandIn, cookie: str, settings: Any, model: str
) -> None:
    settings.GEMINI_MODEL = model
    info = MODELS[model]
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="audio")
    assert live["model"] == model

    record, non_blocking = check_setup(standin, model, info)
    heard = await speak_and_check_late_transcription(browser, standin)
    await send_note_and_check_response(browser, standin, record, non_blocking)

    await browser.send(type="text", text="thanks")
    last = await browser.expect("turn_complete", timeout=10)
    shown = await browser.expect("usage")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    usage = check_turns_and_usage(browser, standin, record, info, last, shown)
    await check_stored_session(live["session_id"], model, usage, heard)
    await browser.close()


async def test_text_mode_asks_for_audio_and_sends_the_browser_text_only(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    await browser.send(type="text", text="Hello")
    done = await browser.expect("turn_complete")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    setup = standin.connections[0].setup
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert sent_audio(standin)  # the model spoke...
    assert browser.audio == []  # ...and none of it reached the browser
    reply = sent_texts(standin, "outputTranscription")
    shown = [m for m in browser.messages if m["type"] == "transcript" and m["role"] == "model"]
    assert {m["source"] for m in shown} == {"text-reply"}
    assert browser.transcript("model", done["turn"]) == reply
    session, lines = await stored(live["session_id"])
    assert session.response_modality == LiveSession.Modality.TEXT
    assert lines == [(1, "user", "typed", "Hello"), (2, "model", "text-reply", reply.strip())]
    await browser.close()


@pytest.mark.parametrize("model", ["gemini-2.5-flash-native-audio-preview-09-2025", "gemini-9"])
async def test_a_retired_or_unknown_model_is_refused_with_its_code_and_a_plain_message(
    standin: StandIn,
    cookie: str,
    settings: Any,
    model: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.GEMINI_MODEL = model
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    connecting = await browser.expect("status", state="connecting")
    error = await browser.expect("error")
    reason = f"models/{model} is not found for API version v1beta, or is not supported for"
    assert error["code"] == "model_unavailable"
    assert error["upstream_code"] == 1008  # the real code, not a generic 1011
    assert error["upstream_reason"].startswith(reason)
    assert "GEMINI_MODEL" in error["message"]
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    assert standin.connections[0].close_code == 1008

    session, lines = await stored(connecting["session_id"])
    assert (session.status, session.end_reason) == ("failed", "upstream_unavailable")
    assert lines == []
    [operator] = [r for r in caplog.records if "Set GEMINI_MODEL" in r.getMessage()]
    assert operator.levelno == logging.WARNING
    assert model in operator.getMessage()
    assert "1008" in operator.getMessage()


async def test_a_setting_the_model_refuses_closes_with_1007_and_says_so(
    standin: StandIn, cookie: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the model table were wrong about a model, the service's 1007 reaches the user.

    The table is patched (no real part can send a wrong setup otherwise) to claim that
    gemini-3.1-flash-live-preview takes a media resolution; the stand-in refuses it.
    """
    model = "gemini-3.1-flash-live-preview"
    settings.GEMINI_MODEL = model
    monkeypatch.setitem(MODELS, model, replace(MODELS[model], media_resolution=True))
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    error = await browser.expect("error")
    assert (error["code"], error["upstream_code"]) == ("model_refused", 1007)
    assert "mediaResolution" in error["upstream_reason"] or "media" in error["upstream_reason"]
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    assert standin.connections[0].setup_complete_at is None


async def test_the_model_service_internal_error_at_start_is_a_model_error(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.refuse_connections = True
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    connecting = await browser.expect("status", state="connecting")
    error = await browser.expect("error")
    assert (error["code"], error["upstream_code"]) == ("model_error", 1011)
    assert error["message"] == "The model service had an internal error. Try again in a minute."
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    session, _ = await stored(connecting["session_id"])
    assert (session.status, session.end_reason) == ("failed", "upstream_unavailable")


async def test_frames_sent_while_nobody_speaks_reach_a_model_whose_default_ignores_them(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    """gemini-2.5-flash-native-audio counts only frames seen during activity by default;
    the relay's explicit turn coverage makes every frame count."""
    settings.GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
    standin.behaviour.activity_window_s = 0.0
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="audio")
    assert standin.connections[0].profile.default_turn_coverage == "TURN_INCLUDES_ONLY_ACTIVITY"
    for colour in ((10, 10, 10), (200, 10, 10), (10, 200, 10)):
        await browser.send_media(Kind.JPEG, jpeg(640, 360, colour))
    await standin.wait_for(lambda: len(standin.connections[0].frames) == 3)
    await browser.send(type="text", text="What is on the screen?")
    done = await browser.expect("turn_complete")
    assert "3 frames (latest 640x360)" in browser.transcript("model", done["turn"])
    await browser.close()


async def test_audio_end_reaches_the_model_and_it_answers_at_once(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.speech_gap_s = 30.0  # only the end of the stream ends the utterance
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="audio")
    for piece in chunks(tone(440, 0.5)):
        await browser.send_media(Kind.AUDIO, piece)
    await standin.wait_for(lambda: len(standin.connections[0].audio) == 5)
    assert not final_turn_completes(standin)  # still listening
    await browser.send(type="audio_end")
    done = await browser.expect("turn_complete", timeout=10)
    assert "I heard 0.5 s of audio" in browser.transcript("model", done["turn"])
    realtime = client_messages(standin, "realtimeInput")
    assert realtime[-1] == {"audioStreamEnd": True}
    assert all("audio" in body for body in realtime[:-1])
    await browser.close()


def test_manage_py_check_warns_about_a_retired_or_unknown_model(settings: Any) -> None:
    settings.GEMINI_MODEL = sorted(RETIRED)[0]
    [retired] = [m for m in checks.run_checks() if m.id == "sessions_app.W001"]
    assert retired.level == checks.WARNING
    assert sorted(RETIRED)[0] in retired.msg
    settings.GEMINI_MODEL = "gemini-9-live"
    [unknown] = [m for m in checks.run_checks() if m.id == "sessions_app.W002"]
    assert "gemini-9-live" in unknown.msg
    settings.GEMINI_MODEL = live_models.DEFAULT_MODEL
    assert [m for m in checks.run_checks() if m.id.startswith("sessions_app.")] == []
