"""Turns as the service really ends them, and lines stored in the order they began.

Full ASGI stack, the real google-genai SDK over TLS, the stand-in on each of today's
models (the 3.8 ones split replies with ``interactionStatus: IN_PROGRESS``).
"""

from typing import Any

import pytest

from sessions_app.live.models import MODELS
from standin import StandIn
from tests.conftest import Browser
from tests.records import contents, final_turn_completes, sent_texts, stored

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=sorted(MODELS), autouse=True)
def model(request: pytest.FixtureRequest, settings: Any) -> str:
    """Every test here runs on each of today's models, as the stand-in profiles them."""
    settings.GEMINI_MODEL = request.param
    return str(request.param)


async def test_a_reply_still_in_progress_is_one_turn_and_one_line(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="Tell me")
    done = await browser.expect("turn_complete")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    in_progress = [c for c in contents(standin) if c.get("interactionStatus") == "IN_PROGRESS"]
    if standin.connections[0].profile.interaction_status:
        assert in_progress  # the stand-in split the reply
        assert in_progress[0]["turnComplete"] is True
    else:
        assert in_progress == []
    assert [m["type"] for m in browser.messages].count("turn_complete") == 1
    reply = sent_texts(standin, "outputTranscription")
    assert browser.transcript("model", done["turn"]) == reply
    _, lines = await stored(live["session_id"])
    assert lines == [(1, "user", "typed", "Tell me"), (2, "model", "speech", reply.strip())]


async def test_a_line_typed_while_the_model_answers_is_stored_after_that_answer(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.chunk_interval_s = 0.1
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="first")
    await browser.expect("transcript", role="model", turn=1)
    await browser.send(type="text", text="second, typed mid-answer")
    echo = await browser.expect("transcript", source="typed", text="second, typed mid-answer")
    assert echo["final"] is True  # shown at once...
    await browser.expect("turn_complete", turn=1, timeout=10)
    await browser.expect("turn_complete", turn=2, timeout=10)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    _, lines = await stored(live["session_id"])
    assert [(seq, role, source) for seq, role, source, _ in lines] == [
        (1, "user", "typed"),
        (2, "model", "speech"),  # ...but the answer began first, so it is stored first
        (3, "user", "typed"),
        (4, "model", "speech"),
    ]
    assert lines[1][3] == browser.transcript("model", 1).strip()
    assert lines[2][3] == "second, typed mid-answer"
    assert lines[3][3].startswith('You said: "second, typed mid-answer"')


async def test_an_interrupted_reply_and_its_turn_complete_are_one_turn(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.chunk_interval_s = 0.2
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="Talk for a while")
    await browser.expect("transcript", role="model", turn=1)
    await standin.interrupt()
    await browser.expect("interrupted", turn=1)
    closed = await browser.expect("turn_complete")
    assert closed == {"type": "turn_complete", "turn": 1, "interrupted": True}
    standin.behaviour.chunk_interval_s = 0.0
    await browser.send(type="text", text="next")
    assert (await browser.expect("turn_complete"))["turn"] == 2
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    interrupted = [c for c in contents(standin) if c.get("interrupted")]
    assert len(interrupted) == 1
    after = contents(standin)[contents(standin).index(interrupted[0]) + 1]
    assert after.get("turnComplete") is True  # the service closed the turn itself
    kinds = [m["type"] for m in browser.messages if m["type"] in ("interrupted", "turn_complete")]
    assert kinds == ["interrupted", "turn_complete", "turn_complete"]
    _, lines = await stored(live["session_id"])
    assert [seq for seq, *_ in lines] == [1, 2, 3, 4]
    assert [(role, source) for _, role, source, _ in lines] == [
        ("user", "typed"),
        ("model", "speech"),
        ("user", "typed"),
        ("model", "speech"),
    ]


async def test_a_refused_turn_tells_the_user_why(standin: StandIn, cookie: str) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="refuse: something prohibited")
    refused = await browser.expect("turn_complete")
    assert refused["reason"] == "PROHIBITED_INPUT_CONTENT"
    assert refused["message"] == "The model would not answer that: the input was refused."
    [final] = final_turn_completes(standin)
    assert final["turnCompleteReason"] == "PROHIBITED_INPUT_CONTENT"
    await browser.send(type="text", text="something else")
    assert (await browser.expect("turn_complete"))["turn"] == refused["turn"] + 1
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    _, lines = await stored(live["session_id"])
    assert [(role, text) for _, role, _, text in lines][:2] == [
        ("user", "refuse: something prohibited"),
        ("user", "something else"),
    ]
