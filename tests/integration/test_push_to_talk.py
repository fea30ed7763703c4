"""Push-to-talk: activity start and end instead of the service's automatic detection.

Full ASGI stack, the real google-genai SDK over TLS to the stand-in. The order of what
the stand-in received and what it replied is read from its records (``reply_marks``),
never from wall-clock durations.
"""

from typing import Any

import pytest

from sessions_app.protocol import Kind
from standin import StandIn
from tests.conftest import Browser
from tests.records import (
    chunks,
    eventually,
    first_answer,
    last_handle,
    position,
    realtime_fields,
    tone,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Half a second of speech, then a second of quiet: with automatic detection on, the
# stand-in's detector ends the utterance after 0.4 s of it and answers.
SPEECH = tone(440, 0.5)
QUIET = bytes(32000)
SPOKEN = chunks(SPEECH + QUIET)


async def live_push_to_talk(browser: Browser) -> dict[str, Any]:
    """Connect and start a push-to-talk session; the ``live`` status."""
    await browser.connect()
    await browser.send(type="start", mode="audio", voice="Puck", push_to_talk=True)
    return await browser.expect("status", state="live", timeout=10)


async def speak(browser: Browser, standin: StandIn, connection: int = 0) -> None:
    """Send SPOKEN and wait until the stand-in has recorded every chunk of it."""
    before = len(standin.connections[connection].audio)
    for chunk in SPOKEN:
        await browser.send_media(Kind.AUDIO, chunk)
    await standin.wait_for(
        lambda: len(standin.connections[connection].audio) == before + len(SPOKEN)
    )


async def test_the_setup_turns_automatic_activity_detection_off(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    await standin.wait_for(lambda: standin.connections[0].setup is not None)
    realtime = standin.connections[0].setup["realtimeInputConfig"]
    assert realtime["automaticActivityDetection"] == {"disabled": True}
    await browser.close()


async def test_without_push_to_talk_automatic_detection_stays_on_and_silence_ends_a_turn(
    standin: StandIn, cookie: str
) -> None:
    """The control: the same speech is answered on the quiet after it, with nothing else."""
    browser = Browser(cookie)
    await browser.connect()
    await browser.start()
    for chunk in SPOKEN:
        await browser.send_media(Kind.AUDIO, chunk)
    done = await browser.expect("turn_complete", timeout=10)
    assert "automaticActivityDetection" not in standin.connections[0].setup["realtimeInputConfig"]
    assert browser.transcript("model", done["turn"]).startswith("I heard 0.5 s")
    await standin.wait_for(lambda: len(standin.connections[0].audio) == len(SPOKEN))
    assert realtime_fields(standin) == ["audio"] * len(SPOKEN)
    assert first_answer(standin) < len(SPOKEN)  # answered before the quiet was all sent
    await browser.close()


async def test_the_stand_in_answers_only_after_the_activity_end(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    await browser.send(type="activity_start")
    await browser.send(type="activity_start")  # a key repeat: one start goes upstream
    await speak(browser, standin)
    await browser.read_waiting()
    assert [m for m in browser.messages if m["type"] in ("transcript", "turn_complete")] == []
    await browser.send(type="activity_end")
    done = await browser.expect("turn_complete", timeout=10)

    assert realtime_fields(standin) == ["activityStart", *["audio"] * len(SPOKEN), "activityEnd"]
    assert first_answer(standin) > position(standin, "activityEnd")
    assert browser.transcript("model", done["turn"]).startswith("I heard 0.5 s")
    assert browser.audio  # the reply was spoken
    await browser.close()


async def test_an_end_without_a_start_and_audio_outside_an_activity_start_no_turn(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    await browser.send(type="activity_end")  # nothing held: ignored
    await speak(browser, standin)  # heard, but no activity: no turn
    await browser.send(type="text", text="and now?")
    done = await browser.expect("turn_complete", timeout=10)

    assert realtime_fields(standin) == [*["audio"] * len(SPOKEN), "text"]
    assert browser.transcript("model", done["turn"]).startswith('You said: "and now?"')
    assert [m["type"] for m in browser.messages].count("turn_complete") == 1
    await browser.close()


async def test_activity_messages_are_refused_without_push_to_talk(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="activity_start")
    refused = await browser.expect("error")
    assert refused["code"] == "not_started"
    await browser.start()
    for kind in ("activity_start", "activity_end"):
        await browser.send(type=kind)
        refused = await browser.expect("error")
        assert refused["code"] == "wrong_mic_mode"
        assert kind in refused["message"]
    await browser.send(type="text", text="still here")
    await browser.expect("turn_complete", timeout=10)  # the session went on
    assert realtime_fields(standin) == ["text"]
    await browser.close()


async def test_audio_end_is_refused_with_push_to_talk(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    await browser.send(type="audio_end")
    refused = await browser.expect("error")
    assert refused["code"] == "wrong_mic_mode"
    assert "activity_end" in refused["message"]
    await browser.send(type="text", text="still here")
    await browser.expect("turn_complete", timeout=10)
    assert realtime_fields(standin) == ["text"]  # no audioStreamEnd went upstream
    await browser.close()


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, [], {}])
async def test_a_bad_push_to_talk_value_is_invalid_field(
    standin: StandIn, cookie: str, value: Any
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", push_to_talk=value)
    refused = await browser.expect("error")
    assert refused["code"] == "invalid_field"
    assert "push_to_talk" in refused["message"]
    await browser.send(type="start", push_to_talk=False)  # the socket goes on
    await browser.expect("status", state="live", timeout=10)
    assert standin.connections[0].setup is not None
    assert len(standin.connections) == 1
    await browser.close()


async def test_a_hand_over_while_the_button_is_held_starts_the_activity_on_the_new_connection(
    standin: StandIn, cookie: str
) -> None:
    """The handle is taken while the user holds the button; goAway, then the release."""
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    await browser.send(type="activity_start")
    await browser.send(type="text", text="while holding")
    await browser.expect("turn_complete", timeout=10)
    await standin.wait_for(lambda: last_handle(standin, 0) == "standin-0-1")
    await standin.go_away(1.0)
    await browser.expect("status", state="handed_over", timeout=10)
    await speak(browser, standin, connection=1)
    await browser.send(type="activity_end")
    done = await browser.expect("turn_complete", turn=2, timeout=10)

    assert realtime_fields(standin, 0) == ["activityStart", "text"]
    assert standin.connections[1].resumed_from == "standin-0-1"
    assert realtime_fields(standin, 1) == ["activityStart", *["audio"] * len(SPOKEN), "activityEnd"]
    assert first_answer(standin, 1) > position(standin, "activityEnd", 1)
    assert browser.transcript("model", done["turn"]).startswith("I heard 0.5 s")
    await browser.close()


async def test_a_flood_of_activity_signals_is_rate_limited_and_the_session_goes_on(
    standin: StandIn, cookie: str
) -> None:
    """Activity signals count against the 100-a-second limit on all messages."""
    browser = Browser(cookie)
    await live_push_to_talk(browser)
    for _ in range(200):
        await browser.send(type="activity_start")
        await browser.send(type="activity_end")
    warned = await browser.expect("error", timeout=10)
    assert warned["code"] == "rate_limited"

    async def a_text_got_through() -> bool:
        """Send a text (dropped while the limit refills) until one is echoed."""
        await browser.send(type="text", text="still here")
        await browser.read_waiting()
        return any(m.get("source") == "typed" for m in browser.messages)

    await eventually(a_text_got_through, interval=0.25)
    await browser.expect("turn_complete", timeout=10)  # the session went on
    signals = [kind for kind in realtime_fields(standin) if kind != "text"]
    assert 0 < len(signals) < 400
    assert signals[::2] == ["activityStart"] * len(signals[::2])  # still paired, in order
    assert signals[1::2] == ["activityEnd"] * len(signals[1::2])
    await browser.close()
