"""The share consumer end to end: full ASGI stack, real google-genai SDK, stand-in over TLS."""

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from standin import StandIn
from tests.conftest import Browser, login_cookie
from tests.records import eventually, jpeg, sent_audio, sent_texts, sent_usage, stored, tone

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def check_audio_setup_with_kore(standin: StandIn) -> None:
    """The first connection's setup: the configured model, audio replies in Kore's voice,
    both transcriptions, the system instruction, and the API key."""
    setup = standin.connections[0].setup
    assert setup["model"] == f"models/{settings.GEMINI_MODEL}"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice["voiceName"] == "Kore"
    assert "inputAudioTranscription" in setup
    assert "outputAudioTranscription" in setup
    assert setup["systemInstruction"]["parts"][0]["text"] == settings.GEMINI_SYSTEM_INSTRUCTION
    assert standin.connections[0].had_api_key


async def check_two_turns_stored(standin: StandIn, session_id: str, model_text: str) -> None:
    """The session ended by the client, its usage, and both turns' four lines, stored."""
    session, lines = await stored(session_id)
    assert session.status == LiveSession.Status.ENDED
    assert session.end_reason == LiveSession.EndReason.CLIENT_STOP
    assert session.ended_at is not None
    assert session.voice == "Kore"
    assert session.response_modality == "AUDIO"
    assert session.user_agent == "pytest-browser/1.0"
    assert session.total_tokens == sent_usage(standin)["total_tokens"]
    assert session.audio_seconds_out == pytest.approx(len(sent_audio(standin)) / 48000)
    second_reply = sent_texts(standin, "outputTranscription")[len(model_text) :]
    assert lines == [
        (1, "user", "typed", "Hello there"),
        (2, "model", "speech", model_text.strip()),
        (3, "user", "typed", "And again"),
        (4, "model", "speech", second_reply.strip()),
    ]


async def test_typed_text_relays_both_ways_and_is_stored(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    hello = await browser.connect()
    assert hello["offline_demo"] is False
    assert "Kore" in hello["voices"]
    live = await browser.start(mode="audio", voice="Kore")
    session_id = live["session_id"]

    check_audio_setup_with_kore(standin)

    await browser.send(type="text", text="Hello there")
    echo = await browser.expect("transcript", source="typed")
    assert echo["text"] == "Hello there"
    done = await browser.expect("turn_complete")
    usage = await browser.expect("usage")

    assert standin.connections[0].texts == ["Hello there"]
    model_text = sent_texts(standin, "outputTranscription")
    assert 'You said: "Hello there"' in model_text
    assert browser.transcript("model", done["turn"]) == model_text
    assert b"".join(browser.audio) == sent_audio(standin)
    assert len(browser.audio) > 1
    assert usage["total_tokens"] == sent_usage(standin)["total_tokens"]

    # A second turn still relays: the receive loop goes on after turnComplete.
    await browser.send(type="text", text="And again")
    second = await browser.expect("turn_complete")
    assert second["turn"] == done["turn"] + 1
    assert standin.connections[0].texts == ["Hello there", "And again"]

    await browser.send(type="stop")
    await browser.expect("status", state="ended", reason="client_stop")
    await check_two_turns_stored(standin, session_id, model_text)
    await browser.close()


async def test_audio_is_relayed_byte_exact_and_transcribed(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    speech = tone(440, 1.0)
    # Every byte value, so the SDK's URL-safe base64 (- and _) must be decoded right.
    speech += bytes(range(256)) * 8
    chunks = [speech[i : i + 3200] for i in range(0, len(speech), 3200)]
    for chunk in chunks:
        await browser.send_media(Kind.AUDIO, chunk)
    done = await browser.expect("turn_complete", timeout=10)

    received = standin.connections[0].audio
    assert [mime for mime, _ in received] == ["audio/pcm;rate=16000"] * len(chunks)
    assert b"".join(data for _, data in received) == speech
    heard = sent_texts(standin, "inputTranscription")
    assert "440 Hz" in heard
    assert browser.transcript("user", done["turn"]) == heard

    await browser.close()
    session, lines = await stored(live["session_id"])
    assert session.status == LiveSession.Status.ENDED
    assert session.end_reason == LiveSession.EndReason.CLIENT_DISCONNECT
    assert session.audio_seconds_in == pytest.approx(len(speech) / 32000)
    assert lines[0] == (1, "user", "speech", heard.strip())
    assert lines[1][1:3] == ("model", "speech")


async def test_frames_are_relayed_byte_exact(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    frames = [jpeg(1024, 576), jpeg(1024, 576)]
    for frame in frames:
        await browser.send_media(Kind.JPEG, frame)
    await standin.wait_for(lambda: len(standin.connections[0].frames) == 2)
    await browser.send(type="text", text="What do you see?")
    done = await browser.expect("turn_complete")

    assert standin.connections[0].frames == [("image/jpeg", f) for f in frames]
    # Every Live model answers in audio only: text mode asks for AUDIO with its
    # transcription, shows the transcription and drops the audio.
    setup = standin.connections[0].setup
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert "outputAudioTranscription" in setup
    assert sent_audio(standin), "the model spoke"
    reply = sent_texts(standin, "outputTranscription")
    assert "2 frames" in reply
    assert "1024x576" in reply
    assert browser.transcript("model", done["turn"]) == reply
    assert browser.audio == []

    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    session, lines = await stored(live["session_id"])
    assert session.frames_received == 2
    assert lines == [
        (1, "user", "typed", "What do you see?"),
        (2, "model", "text-reply", reply.strip()),
    ]


async def test_anonymous_socket_is_closed_before_any_upstream(standin: StandIn) -> None:
    browser = Browser(cookie=None)
    connected, _ = await browser.ws.connect(timeout=5)
    assert connected
    assert await browser.expect_close() == CloseCode.UNAUTHENTICATED
    assert standin.connections == []
    await browser.close()


async def test_bad_input_gets_errors_and_the_session_goes_on(
    standin: StandIn, cookie: str, other_user: Any
) -> None:
    bystander = Browser(await database_sync_to_async(login_cookie)(other_user))
    await bystander.connect()
    await bystander.start()
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="text", text="too early")
    assert (await browser.expect("error"))["code"] == "not_started"
    await browser.start()

    oversize = b"\xff\xd8\xff" + b"\0" * settings.SHARE_MAX_MESSAGE_BYTES
    await browser.send_media(Kind.JPEG, oversize)
    assert (await browser.expect("error"))["code"] == "too_large"
    await browser.send(type="dance")
    assert (await browser.expect("error"))["code"] == "unknown_type"
    await browser.ws.send_to(text_data="{not json")
    assert (await browser.expect("error"))["code"] == "bad_json"
    await browser.send_media(Kind.JPEG, b"GIF89a not a jpeg")
    assert (await browser.expect("error"))["code"] == "bad_image"
    await browser.send_media(Kind.AUDIO, b"\x01\x02\x03")
    assert (await browser.expect("error"))["code"] == "bad_audio"
    await browser.send(type="start", mode="audio")
    assert (await browser.expect("error"))["code"] == "already_started"

    # The session carries on, and so does the other user's.
    await browser.send(type="text", text="still here?")
    await browser.expect("turn_complete")
    await bystander.send(type="text", text="me too")
    await bystander.expect("turn_complete")
    assert standin.connections[1].texts == ["still here?"]
    assert standin.connections[1].frames == []
    await browser.close()
    await bystander.close()


async def test_disconnect_mid_turn_stores_the_partial_turn(standin: StandIn, cookie: str) -> None:
    standin.behaviour.chunk_interval_s = 0.2
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="Tell me a long story")
    await browser.expect("transcript", role="model")
    await browser.close()
    partial = sent_texts(standin, "outputTranscription")

    session, lines = await stored(live["session_id"])
    assert session.status == LiveSession.Status.ENDED
    assert session.end_reason == LiveSession.EndReason.CLIENT_DISCONNECT
    assert lines[0] == (1, "user", "typed", "Tell me a long story")
    assert lines[1][1:3] == ("model", "speech")
    assert partial.strip().startswith(lines[1][3])


async def test_upstream_failure_ends_the_session_with_a_close_code(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="first")
    await browser.expect("turn_complete")
    await standin.stop()
    await browser.expect("status", state="reconnecting")
    error = await browser.expect("error")
    assert error["code"] == "upstream_error"
    assert error["message"] == (
        "The connection to the model was lost and could not be restored. Start again."
    )
    assert "3 attempts to resume failed" in error["detail"]
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    session, lines = await stored(live["session_id"])
    assert session.status == LiveSession.Status.FAILED
    assert session.end_reason == LiveSession.EndReason.UPSTREAM_ERROR
    assert [line[1:3] for line in lines] == [("user", "typed"), ("model", "speech")]


async def test_unreachable_upstream_fails_the_start(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    await standin.stop()
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    connecting = await browser.expect("status", state="connecting")
    error = await browser.expect("error")
    assert error["code"] == "upstream_unavailable"
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED
    session, lines = await stored(connecting["session_id"])
    assert session.status == LiveSession.Status.FAILED
    assert session.end_reason == LiveSession.EndReason.UPSTREAM_UNAVAILABLE
    assert lines == []


async def test_two_sessions_run_side_by_side(
    standin: StandIn, cookie: str, other_user: Any
) -> None:
    alice = Browser(cookie)
    bob = Browser(await database_sync_to_async(login_cookie)(other_user))
    for browser in (alice, bob):
        await browser.connect()
        await browser.start()
    await asyncio.gather(alice.send(type="text", text="A"), bob.send(type="text", text="B"))
    await asyncio.gather(alice.expect("turn_complete"), bob.expect("turn_complete"))
    assert sorted(c.texts[0] for c in standin.connections) == ["A", "B"]
    await alice.close()
    await bob.close()
    for browser, text in ((alice, "A"), (bob, "B")):
        live = next(m for m in browser.messages if m.get("state") == "live")
        session, lines = await stored(live["session_id"])
        assert session.end_reason == LiveSession.EndReason.CLIENT_DISCONNECT
        assert lines[0] == (1, "user", "typed", text)


async def test_lines_are_stored_when_each_turn_completes(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="one")
    await browser.expect("turn_complete")

    async def stored_while_live() -> list[tuple[int, str, str, str]] | None:
        """Both lines of the turn, once stored, while the session is still live."""
        session, lines = await stored(live["session_id"])
        assert session.status == LiveSession.Status.ACTIVE
        return lines if len(lines) == 2 else None

    lines = await eventually(stored_while_live, timeout=5)
    assert [line[1:3] for line in lines] == [("user", "typed"), ("model", "speech")]
    session, _ = await stored(live["session_id"])
    assert session.total_tokens == sent_usage(standin)["total_tokens"]
    await browser.close()


async def test_interrupted_turn_is_relayed_and_stored(standin: StandIn, cookie: str) -> None:
    standin.behaviour.chunk_interval_s = 0.2
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="Talk for a while")
    first = await browser.expect("transcript", role="model")
    await standin.interrupt()
    interrupted = await browser.expect("interrupted")
    assert interrupted["turn"] == first["turn"]
    # The service closes an interrupted turn with turnComplete: one turn, not two.
    closed = await browser.expect("turn_complete")
    assert closed == {"type": "turn_complete", "turn": first["turn"], "interrupted": True}

    standin.behaviour.chunk_interval_s = 0.0
    await browser.send(type="text", text="Short answer please")
    done = await browser.expect("turn_complete")
    assert done["turn"] == interrupted["turn"] + 1
    assert [m["type"] for m in browser.messages].count("interrupted") == 1
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    _, lines = await stored(live["session_id"])
    partial = browser.transcript("model", interrupted["turn"])
    assert partial
    assert lines == [
        (1, "user", "typed", "Talk for a while"),
        (2, "model", "speech", partial.strip()),
        (3, "user", "typed", "Short answer please"),
        (4, "model", "speech", browser.transcript("model", done["turn"]).strip()),
    ]


async def test_stop_then_start_again_on_the_same_socket(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    first = await browser.start()
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    await browser.send_media(Kind.AUDIO, b"\0\0" * 160)
    assert (await browser.expect("error"))["code"] == "not_started"
    await browser.send(type="stop")
    assert (await browser.expect("error"))["code"] == "not_started"
    second = await browser.start(mode="text")
    assert second["session_id"] != first["session_id"]
    await browser.send(type="text", text="again")
    await browser.expect("turn_complete")
    assert [c.closed for c in standin.connections] == [True, False]
    await browser.close()
