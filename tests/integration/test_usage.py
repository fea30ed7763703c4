"""Token usage per session: totals and per-modality counts, live and stored.

Full ASGI stack, real google-genai SDK; the stand-in reports ``usageMetadata`` with every
turnComplete, and its records are the reference the session's totals must add up to.
"""

from typing import Any

import pytest
from channels.db import database_sync_to_async

from sessions_app.models import LiveSession
from sessions_app.protocol import Kind
from standin import StandIn
from tests.conftest import Browser
from tests.records import USAGE_COUNTS, USAGE_DETAILS, eventually, sent_usage, tone

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored_usage(session_id: str) -> dict[str, Any]:
    """The usage stored on a session's row."""
    session = LiveSession.objects.get(pk=session_id)
    return {name: getattr(session, name) for name in (*USAGE_COUNTS, *USAGE_DETAILS)}


def fixed_usage(standin: StandIn, prompt: int, response: int) -> None:
    """Bill every turn a fixed prompt and response: these tests are about adding them up."""
    standin.behaviour.prompt_tokens_per_turn = prompt
    standin.behaviour.response_tokens_per_turn = response


def shown_usage(message: dict[str, Any]) -> dict[str, Any]:
    """A ``usage`` message's token counts: without its type, and without its cost (which
    tests/integration/test_spending.py checks against the price table)."""
    return {key: value for key, value in message.items() if key not in ("type", "cost_usd")}


async def test_voice_session_adds_up_audio_and_text_turns(standin: StandIn, cookie: str) -> None:
    fixed_usage(standin, 100, 50)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="audio")

    await browser.send(type="text", text="a typed question")
    await browser.expect("turn_complete", turn=1)
    first = await browser.expect("usage")
    assert first["prompt_tokens_by_modality"] == {"TEXT": 100}
    assert first["response_tokens_by_modality"] == {"AUDIO": 50}

    standin.behaviour.prompt_tokens_per_turn = 37
    standin.behaviour.response_tokens_per_turn = 11
    speech = tone(440, 0.8)
    for start in range(0, len(speech), 3200):
        await browser.send_media(Kind.AUDIO, speech[start : start + 3200])
    await browser.expect("turn_complete", turn=2, timeout=10)
    await browser.expect("usage")

    standin.behaviour.prompt_tokens_per_turn = 5
    standin.behaviour.response_tokens_per_turn = 7
    await browser.send(type="text", text="and one more")
    await browser.expect("turn_complete", turn=3)
    last = await browser.expect("usage")

    expected = sent_usage(standin, 0)
    assert expected["prompt_tokens_by_modality"] == {"TEXT": 105, "AUDIO": 37}
    assert expected["response_tokens_by_modality"] == {"AUDIO": 68}
    assert shown_usage(last) == expected
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    assert await stored_usage(live["session_id"]) == expected
    await browser.close()


async def test_text_session_and_hand_over_keep_adding_up(standin: StandIn, cookie: str) -> None:
    fixed_usage(standin, 100, 50)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    await browser.send(type="text", text="first")
    await browser.expect("turn_complete", turn=1)
    await standin.go_away(0.2)
    await browser.expect("status", state="handed_over")
    standin.behaviour.prompt_tokens_per_turn = 3
    await browser.send(type="text", text="second, on the new connection")
    await browser.expect("turn_complete", turn=2)
    await browser.expect("usage")

    expected = sent_usage(standin, 0, 1)
    assert expected["total_tokens"] == 150 + 53
    assert expected["response_tokens_by_modality"] == {"AUDIO": 100}  # text mode: spoken
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    assert await stored_usage(live["session_id"]) == expected
    await browser.close()


async def test_usage_is_stored_with_each_turn_before_the_session_ends(
    standin: StandIn, cookie: str
) -> None:
    fixed_usage(standin, 100, 50)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    await browser.send(type="text", text="one")
    await browser.expect("turn_complete", turn=1)
    await browser.expect("usage")
    await browser.send(type="text", text="two")  # its line's flush carries turn 1's usage
    await browser.expect("transcript", source="typed")
    await browser.expect("turn_complete", turn=2)

    async def both_turns_stored() -> dict[str, Any] | None:
        """The stored usage, once it counts both turns (the writer stores in the background)."""
        usage = await stored_usage(live["session_id"])
        return usage if usage["total_tokens"] >= 150 else None

    usage = await eventually(both_turns_stored, timeout=5)
    assert usage["prompt_tokens_by_modality"]["TEXT"] >= 100
    assert usage["response_tokens_by_modality"]["AUDIO"] >= 50  # every model speaks
    session = await database_sync_to_async(LiveSession.objects.get)(pk=live["session_id"])
    assert session.status == LiveSession.Status.ACTIVE
    await browser.close()
