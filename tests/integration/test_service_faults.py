"""What the service really does to a session, and how the relay comes through it.

Full ASGI stack, the real google-genai SDK over TLS, the stand-in scripting each fault:
message kinds the SDK does not know, malformed JSON, closes with 1007/1008/1011, a
resumption refused while the old connection is open, "Deadline expired" and a handle that
then fails with 1007, a goAway while a function call is pending. Every test checks what
the browser received and what was stored.
"""

import asyncio
import logging
from typing import Any

import pytest

from sessions_app.live.models import MODELS
from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, Kind
from sessions_app.session import tools
from sessions_app.session.conversation import Conversation
from standin import StandIn
from tests.conftest import Browser
from tests.records import chunks, client_messages, final_turn_completes, stored, tone

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=sorted(MODELS), autouse=True)
def model(request: pytest.FixtureRequest, settings: Any) -> str:
    """Every test here runs on each of today's models, as the stand-in profiles them."""
    settings.GEMINI_MODEL = request.param
    return str(request.param)


def states(browser: Browser) -> list[str]:
    """The ``status`` states the browser saw, in order."""
    return [m["state"] for m in browser.messages if m["type"] == "status"]


def skipped_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The relay's warnings about server messages it skipped."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sessions_app.live.relay" and "skipped a server message" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("unknown_kind_mid_reply", "sessionWarning"), ("malformed_mid_reply", "malformed JSON")],
)
async def test_a_message_the_sdk_cannot_read_is_skipped_once_logged_and_loses_nothing(
    standin: StandIn, cookie: str, caplog: pytest.LogCaptureFixture, fault: str, kind: str
) -> None:
    setattr(standin.behaviour, fault, "sessionWarning" if fault.startswith("unknown") else True)
    caplog.set_level(logging.INFO)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    for question in ("one", "two"):
        await browser.send(type="text", text=question)
        await browser.expect("turn_complete", timeout=10)
    await standin.push_unknown("voiceActivity2", {"x": 1})  # a kind the SDK has never seen
    await browser.send(type="text", text="three")
    done = await browser.expect("turn_complete", timeout=10)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    assert states(browser) == ["connecting", "live", "ended"]  # no reconnect
    assert len(standin.connections) == 1
    warnings = skipped_warnings(caplog)
    assert len([w for w in warnings if f"({kind}:" in w]) == 1  # once per kind
    assert len([w for w in warnings if "(voiceActivity2:" in w]) == 1
    assert "Exception inside application" not in caplog.text
    session, lines = await stored(live["session_id"])
    assert session.status == "ended"
    assert [(role, text) for _, role, _, text in lines][0::2] == [
        ("user", "one"),
        ("user", "two"),
        ("user", "three"),
    ]
    assert len(lines) == 6
    assert done["turn"] == 3
    assert all(role == "model" for _, role, _, _ in lines[1::2])


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1007, "Request contains an invalid argument."), (1008, "Policy violation."),
     (1011, "Internal error encountered.")],
)  # fmt: skip
async def test_a_close_with_1007_1008_or_1011_mid_session_is_resumed(
    standin: StandIn, cookie: str, code: int, reason: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="before")
    await browser.expect("turn_complete", turn=1)
    await standin.disconnect(code=code, reason=reason)
    await browser.expect("status", state="resumed")
    await browser.send(type="text", text="after")
    await browser.expect("turn_complete", turn=2)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    first, second = standin.connections
    assert (first.close_code, first.close_reason) == (code, reason)
    assert second.resumed_from == "standin-0-1"
    assert second.texts == ["after"]
    session, lines = await stored(live["session_id"])
    assert (session.status, session.resumptions) == ("ended", 1)
    assert [text for *_, text in lines][0::2] == ["before", "after"]


async def test_an_overlapping_resumption_refused_closes_the_old_connection_then_resumes(
    standin: StandIn, cookie: str
) -> None:
    standin.behaviour.refuse_overlapping_resumption = True
    standin.behaviour.setup_delay_s = 0.3  # media keeps coming while the switch is under way
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="kept")
    await browser.expect("turn_complete", turn=1)
    await standin.wait_for(
        lambda: standin.connections[0].replies[-1].get("sessionResumptionUpdate")
    )
    await standin.go_away(5.0, close=False)
    speech = chunks(tone(300, 1.0, amplitude=100))  # quiet: no utterance, just media
    for piece in speech:
        await browser.send_media(Kind.AUDIO, piece)
        await asyncio.sleep(0.05)  # a paced microphone, 20 chunks a second
    await browser.expect("status", state="handed_over", timeout=10)
    await browser.send(type="text", text="after the switch")
    await browser.expect("turn_complete", turn=2, timeout=10)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    old, refused, resumed = standin.connections
    assert (refused.close_code, refused.close_reason) == (
        1011,
        "The session is still active on another connection.",
    )
    assert refused.resumption_handle_sent == resumed.resumed_from == "standin-0-1"
    assert old.closed_at is not None
    assert old.closed_at <= resumed.opened_at
    delivered = [data for _, data in old.audio + resumed.audio]
    assert b"".join(delivered).endswith(b"".join(speech))  # held, then delivered, in order
    assert resumed.texts == ["after the switch"]
    session, lines = await stored(live["session_id"])
    assert session.resumptions == 1
    assert [text for *_, text in lines][0::2] == ["kept", "after the switch"]


async def test_deadline_expired_then_a_refused_handle_starts_afresh_with_the_transcript(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    for question in ("first question", "second question"):
        await browser.send(type="text", text=question)
        await browser.expect("turn_complete", timeout=10)
    await standin.deadline_expire()
    await browser.expect("status", state="restarted", timeout=10)
    await browser.send(type="text", text="still there?")
    done = await browser.expect("turn_complete", timeout=10)
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    expired, refused, fresh = standin.connections
    assert expired.close_code == 1011
    assert "Deadline expired" in expired.close_reason
    assert refused.close_code == 1007
    assert refused.close_reason == "Session resumption handle has expired."
    assert fresh.resumption_handle_sent is None  # a new session...
    [seed] = client_messages(standin, "clientContent", connection=2)
    assert seed["turnComplete"] is False
    seeded = [(t["role"], t["parts"][0]["text"]) for t in seed["turns"]]
    assert fresh.texts[-1] == "still there?"
    assert states(browser) == ["connecting", "live", "reconnecting", "restarted", "ended"]
    assert [m["type"] for m in browser.messages].count("error") == 0
    session, lines = await stored(live["session_id"])
    assert (session.status, session.resumptions) == ("ended", 1)
    # The fresh session was given the whole conversation so far, with roles.
    assert seeded == [(role, text) for _, role, _, text in lines[:4]]
    assert [role for role, _ in seeded] == ["user", "model", "user", "model"]
    assert lines[4][1:] == ("user", "typed", "still there?")
    assert lines[-1][1] == "model"
    assert done["turn"] == 3


async def test_a_go_away_while_a_call_is_pending_resumes_from_the_handle_before_the_call(
    standin: StandIn, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note's write is held (patched: no real part makes a write slow on demand), so
    the call stays pending through the goAway; its response then reaches the new
    connection."""
    release = asyncio.Event()
    real_store = tools.store_note

    async def slow_store(**kwargs: Any) -> Any:
        await release.wait()
        return await real_store(**kwargs)

    monkeypatch.setattr(tools, "store_note", slow_store)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="hello")
    await browser.expect("turn_complete", turn=1)
    await standin.wait_for(lambda: standin.lookup_handle("standin-0-1") is not None)
    call_id = await standin.call_tool("save_note", {"title": "T", "body": "B"})
    await standin.wait_for(
        lambda: any(
            r.get("sessionResumptionUpdate", {}).get("resumable") is False
            for r in standin.connections[0].replies
        )
    )
    await standin.go_away(3.0)
    await browser.expect("status", state="handed_over", timeout=10)
    release.set()
    response = await standin.wait_for_tool_response(call_id)
    await browser.expect("note")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    old, new = standin.connections
    assert new.resumption_handle_sent == "standin-0-1"  # not the one sent during the call
    assert new.resumed_from == "standin-0-1"
    assert [r["id"] for r in new.tool_responses] == [call_id]
    assert not old.tool_responses
    assert response["response"]["result"] == "saved"
    assert "restarted" not in states(browser)
    session, _ = await stored(live["session_id"])
    assert session.resumptions == 1


async def test_an_unreadable_ca_bundle_fails_the_session_and_leaves_nothing_running(
    standin: StandIn, cookie: str, settings: Any, tmp_path: Any
) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate")
    settings.GEMINI_CA_BUNDLE = str(bad)
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    connecting = await browser.expect("status", state="connecting")
    error = await browser.expect("error")
    assert error["code"] == "internal_error"
    assert "administrator" in error["message"]
    assert await browser.expect_close() == CloseCode.INTERNAL_ERROR
    session, _ = await stored(connecting["session_id"])
    assert (session.status, session.end_reason) == ("failed", "internal_error")
    assert session.ended_at is not None
    writers = [t for t in asyncio.all_tasks() if t.get_name() == "transcript-writer"]
    assert [t for t in writers if not t.done()] == []
    assert standin.connections == []  # nothing was sent to the model


async def test_an_error_handling_a_model_event_ends_the_session_cleanly(
    standin: StandIn, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in an event handler (injected: the model's fragments raise) ends the session."""
    real = Conversation._fragment

    async def broken(self: Conversation, role: str, source: str, text: str) -> None:
        if role == "model":
            raise RuntimeError("handler bug")
        await real(self, role, source, text)

    monkeypatch.setattr(Conversation, "_fragment", broken)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="kept line")
    error = await browser.expect("error")
    assert error["code"] == "internal_error"
    ended = await browser.expect("status", state="ended")
    assert ended["reason"] == "internal_error"
    assert await browser.expect_close() == CloseCode.INTERNAL_ERROR
    session, lines = await stored(live["session_id"])
    assert (session.status, session.end_reason) == ("failed", "internal_error")
    assert lines == [(1, "user", "typed", "kept line")]


async def test_an_error_in_a_browser_message_handler_ends_the_session_cleanly(
    standin: StandIn, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's guard: an exception escaping a handler (injected) never leaves the
    row active or the browser without a close code."""

    async def broken(self: Conversation) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setattr(Conversation, "audio_end", broken)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="audio_end")
    assert (await browser.expect("error"))["code"] == "internal_error"
    assert await browser.expect_close() == CloseCode.INTERNAL_ERROR
    session, _ = await stored(live["session_id"])
    assert (session.status, session.end_reason) == ("failed", "internal_error")
    assert session.status != LiveSession.Status.ACTIVE
    assert final_turn_completes(standin) == []


async def test_an_error_in_the_relays_own_tasks_ends_the_session_cleanly(
    standin: StandIn, cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed send (injected: the SDK call raises what no connection error does) must not
    leave a deaf relay and a filling queue behind: the session ends as failed."""
    from sessions_app.live import relay

    real_send = relay._Link.send

    async def broken(self: Any, item: Any) -> None:
        if item.kind == "text":
            raise RuntimeError("send bug")
        await real_send(self, item)

    monkeypatch.setattr(relay._Link, "send", broken)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start()
    await browser.send(type="text", text="never sent")
    assert (await browser.expect("error"))["code"] == "internal_error"
    assert await browser.expect_close() == CloseCode.INTERNAL_ERROR
    session, lines = await stored(live["session_id"])
    assert (session.status, session.end_reason) == ("failed", "internal_error")
    assert lines == [(1, "user", "typed", "never sent")]
    assert standin.connections[0].texts == []
