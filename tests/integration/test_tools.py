"""Tool calls: the stand-in calls save_note (and others) through the real SDK over TLS.

Full ASGI stack; the stand-in plays the model, sends ``toolCall`` and
``toolCallCancellation`` and records the function responses it gets.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from google.genai import types

from sessions_app.live import events
from sessions_app.live.config import FunctionSpec
from sessions_app.models import Note
from sessions_app.session import tools
from sessions_app.session.conversation import live_conversations
from standin import StandIn
from tests.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)

NON_BLOCKING_MODEL = "gemini-3.8-live"  # the default: calls do not block, SILENT notes
BLOCKING_MODEL = "gemini-3.1-flash-live-preview"  # waits for every response, then goes on


@pytest.fixture
def blocking_model(settings: Any) -> str:
    """Run the test on a model whose calls block, so every response gets a reply turn."""
    settings.GEMINI_MODEL = BLOCKING_MODEL
    return BLOCKING_MODEL


@database_sync_to_async
def notes_of(session_id: str) -> list[tuple[str, str, str]]:
    """A session's notes as (call_id, title, body), oldest first."""
    return list(Note.objects.filter(session_id=session_id).values_list("call_id", "title", "body"))


@database_sync_to_async
def note_count() -> int:
    """How many notes exist at all."""
    return Note.objects.count()


async def live_session(cookie: str, mode: str = "audio") -> tuple[Browser, str]:
    """A browser with a live session, and the session's id."""
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode=mode)
    return browser, live["session_id"]


@dataclass
class Gate:
    """Holds a coroutine until the test opens it; says when it started and if cancelled."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self) -> None:
        """Block until opened; a cancellation meanwhile is noted and passed on."""
        self.started.set()
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
async def slow_store(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gate]:
    """save_note's database write waits for the gate."""
    gate = Gate()
    original = tools.store_note

    async def gated(**fields: Any) -> Note:
        await gate.wait()
        return await original(**fields)

    monkeypatch.setattr(tools, "store_note", gated)
    yield gate
    gate.opened.set()


@pytest.fixture
async def slow_tool() -> AsyncIterator[Gate]:
    """A registered tool ``slow_lookup(query)`` that answers once the gate opens."""
    gate = Gate()
    spec = FunctionSpec(
        name="slow_lookup",
        description="A lookup that takes a while.",
        parameters={
            "type": "OBJECT",
            "properties": {"query": {"type": "STRING"}},
            "required": ["query"],
        },
    )

    async def slow_lookup(ctx: tools.ToolContext, *, query: str) -> dict[str, Any]:
        await gate.wait()
        return {"result": query.upper()}

    tools.registry.register(spec, slow_lookup)
    yield gate
    tools.registry.unregister("slow_lookup")
    gate.opened.set()


def test_tool_calls_and_cancellations_become_events() -> None:
    message = types.LiveServerMessage(
        tool_call=types.LiveServerToolCall(
            function_calls=[
                types.FunctionCall(id="c1", name="save_note", args={"title": "t", "body": "b"}),
                types.FunctionCall(id="c2", name="other"),
            ]
        ),
        tool_call_cancellation=types.LiveServerToolCallCancellation(ids=["c0"]),
    )
    assert events.events_from_message(message) == [
        events.ToolCall(
            calls=(
                events.FunctionCall("c1", "save_note", {"title": "t", "body": "b"}),
                events.FunctionCall("c2", "other", {}),
            )
        ),
        events.ToolCallCancellation(ids=("c0",)),
    ]


@pytest.mark.parametrize("model", [NON_BLOCKING_MODEL, BLOCKING_MODEL])
async def test_save_note_is_stored_answered_and_shown(
    standin: StandIn, cookie: str, settings: Any, model: str
) -> None:
    settings.GEMINI_MODEL = model
    non_blocking = model == NON_BLOCKING_MODEL
    browser, session_id = await live_session(cookie)
    declarations = standin.connections[0].setup["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["save_note"]
    assert declarations[0]["parameters"]["required"] == ["title", "body"]

    call_id = await standin.call_tool(
        "save_note", {"title": "Groceries", "body": "Milk\nEggs, 6"}, call_id="call-note-1"
    )
    response = await standin.wait_for_tool_response(call_id)
    shown = await browser.expect("note")

    [(stored_call, title, body)] = await notes_of(session_id)
    note = await database_sync_to_async(Note.objects.get)()
    assert (stored_call, title, body) == ("call-note-1", "Groceries", "Milk\nEggs, 6")
    assert str(note.session_id) == session_id
    # gemini-3.8-live runs calls without blocking: the note needs no spoken answer.
    assert declarations[0].get("behavior") == ("NON_BLOCKING" if non_blocking else None)
    assert response == {
        "id": "call-note-1",
        "name": "save_note",
        "response": {"result": "saved", "note_id": note.id},
        **({"scheduling": "SILENT"} if non_blocking else {}),
    }
    assert shown == {
        "type": "note",
        "id": note.id,
        "title": "Groceries",
        "body": "Milk\nEggs, 6",
        "created_at": note.created_at.isoformat(),
    }
    # A blocking model goes on with its reply once it has the response; a non-blocking
    # one keeps a SILENT response to itself.
    await browser.send(type="text", text="anything else?")
    done = await browser.expect("turn_complete")
    spoken = "".join(browser.transcript("model", turn) for turn in range(1, done["turn"] + 1))
    assert ("Function save_note returned" in spoken) is not non_blocking
    assert spoken.endswith(browser.transcript("model", done["turn"]))
    await browser.close()


BAD_ARGUMENTS = [
    ({"title": "No body"}, "Missing argument(s): body."),
    ({"body": "No title"}, "Missing argument(s): title."),
    ({"title": "", "body": "x"}, "Argument 'title' must have at least 1 characters."),
    ({"title": "x" * 201, "body": "x"}, "Argument 'title' must have at most 200 characters."),
    ({"title": "x", "body": "x" * 10_001}, "Argument 'body' must have at most 10000 characters."),
    ({"title": 42, "body": "x"}, "Argument 'title' must be of type string."),
    ({"title": "x", "body": ["a", "b"]}, "Argument 'body' must be of type string."),
    ({"title": "x", "body": "y", "tags": "z"}, "Unknown argument(s): tags."),
    ({"title": "   ", "body": "x"}, "The title and the body must not be blank."),
    ({"title": "two\nlines", "body": "x"}, "The title must be a single line."),
    ({"title": "x", "body": "nul \x00 byte"}, "The note contains control characters"),
]


async def test_bad_arguments_get_an_error_response_and_no_note(
    standin: StandIn, cookie: str
) -> None:
    browser, session_id = await live_session(cookie, mode="text")
    for args, error in BAD_ARGUMENTS:
        call_id = await standin.call_tool("save_note", args)
        response = await standin.wait_for_tool_response(call_id)
        assert response["name"] == "save_note"
        assert set(response["response"]) == {"error"}
        assert response["response"]["error"].startswith(error), args
    assert await notes_of(session_id) == []

    # The session goes on, and a good note is the first the browser is shown.
    call_id = await standin.call_tool("save_note", {"title": "Fine", "body": "At last"})
    await standin.wait_for_tool_response(call_id)
    shown = await browser.expect("note")
    assert shown["title"] == "Fine"
    assert [m for m in browser.messages if m["type"] == "note"] == [shown]
    assert await notes_of(session_id) == [(call_id, "Fine", "At last")]
    await browser.close()


async def test_an_unknown_function_gets_an_error_response(standin: StandIn, cookie: str) -> None:
    browser, _ = await live_session(cookie)
    call_id = await standin.call_tool("launch_rockets", {"count": 3})
    response = await standin.wait_for_tool_response(call_id)
    assert response == {
        "id": call_id,
        "name": "launch_rockets",
        "response": {"error": "Unknown function 'launch_rockets'."},
    }
    await browser.expect("turn_complete")  # the model is told, and goes on
    await browser.close()


async def test_a_cancelled_call_is_stopped_and_never_answered(
    standin: StandIn, cookie: str, slow_tool: Gate
) -> None:
    browser, _ = await live_session(cookie)
    slow_id = await standin.call_tool("slow_lookup", {"query": "weather"})
    await asyncio.wait_for(slow_tool.started.wait(), 5)
    await standin.cancel_tool_calls([slow_id])
    await asyncio.wait_for(slow_tool.cancelled.wait(), 5)
    slow_tool.opened.set()

    # A later call is answered; responses go out in order, so the cancelled one is not coming.
    later_id = await standin.call_tool("save_note", {"title": "After", "body": "the cancel"})
    await standin.wait_for_tool_response(later_id)
    assert standin.tool_responses(slow_id) == []
    assert standin.connections[0].tool_cancellations == [slow_id]
    assert live_conversations()[0].tools.running == []
    await browser.close()


async def test_a_call_cancelled_while_its_note_is_written_keeps_the_note_unanswered(
    standin: StandIn, cookie: str, slow_store: Gate
) -> None:
    browser, session_id = await live_session(cookie)
    standin.behaviour.chunk_interval_s = 0.2  # the model is still speaking when the user barges in
    await browser.send(type="text", text="talk to me")
    await browser.expect("transcript", role="model")
    call_id = await standin.call_tool("save_note", {"title": "Kept", "body": "even so"})
    await asyncio.wait_for(slow_store.started.wait(), 5)
    # As Gemini does when the user barges in: cancel the call, then interrupt. The relay
    # applies messages in order, so once the browser hears of the interruption the
    # cancellation has been applied too.
    await standin.cancel_tool_calls([call_id])
    await standin.interrupt()
    await browser.expect("interrupted")
    assert live_conversations()[0].tools.running == []
    slow_store.opened.set()

    shown = await browser.expect("note")  # stored, so shown
    assert shown["title"] == "Kept"
    assert await notes_of(session_id) == [(call_id, "Kept", "even so")]
    later_id = await standin.call_tool("save_note", {"title": "Later", "body": "answered"})
    await standin.wait_for_tool_response(later_id)
    assert standin.tool_responses(call_id) == []
    assert not slow_store.cancelled.is_set()  # the write itself was never cut short
    await browser.close()


async def test_cancelling_an_answered_call_changes_nothing(
    standin: StandIn, cookie: str, blocking_model: str
) -> None:
    browser, session_id = await live_session(cookie)
    call_id = await standin.call_tool("save_note", {"title": "Done", "body": "already"})
    await standin.wait_for_tool_response(call_id)
    await standin.cancel_tool_calls([call_id])
    await browser.expect("turn_complete")
    assert await notes_of(session_id) == [(call_id, "Done", "already")]
    assert len(standin.tool_responses(call_id)) == 1
    await browser.close()


async def test_a_response_due_during_a_go_away_hand_over_reaches_the_new_connection(
    standin: StandIn, cookie: str, slow_store: Gate, blocking_model: str
) -> None:
    browser, session_id = await live_session(cookie)
    call_id = await standin.call_tool("save_note", {"title": "Across", "body": "the switch"})
    await asyncio.wait_for(slow_store.started.wait(), 5)
    standin.behaviour.setup_delay_s = 0.5  # the new connection takes a while to set up
    await standin.go_away(1.0)  # less than the switch margin: switch at once
    await standin.wait_for(lambda: standin.connections[1].setup is not None)
    # The response is due while the old connection is still open but being replaced.
    slow_store.opened.set()
    response = await standin.wait_for_tool_response(call_id)
    await browser.expect("turn_complete")  # the resumed model answers on the new connection

    assert response["response"]["result"] == "saved"
    assert [index for index, _ in standin.tool_responses(call_id)] == [1]
    assert await notes_of(session_id) == [(call_id, "Across", "the switch")]
    kinds = [message.get("state", message["type"]) for message in browser.messages]
    assert kinds.index("note") < kinds.index("handed_over")  # stored before the switch
    replies = standin.connections[1].replies
    assert any(reply.get("serverContent", {}).get("turnComplete") for reply in replies)
    await browser.close()


async def test_a_hand_over_waits_for_a_pending_tool_call_to_be_answered(
    standin: StandIn, cookie: str, blocking_model: str
) -> None:
    browser, _ = await live_session(cookie)
    call_id = await standin.call_tool("save_note", {"title": "Before", "body": "the switch"})
    await standin.go_away(4.0)
    await browser.expect("status", state="handed_over", timeout=8)

    # Answered on the old connection, whose reply turn ended before the switch: the new
    # connection resumes from the handle sent after that turn.
    assert [index for index, _ in standin.tool_responses(call_id)] == [0]
    assert standin.connections[1].setup["sessionResumption"]["handle"] == "standin-0-1"
    assert standin.connections[1].tool_responses == []
    await browser.close()


async def test_a_user_text_with_the_note_trigger_makes_the_model_save_a_note(
    standin: StandIn, cookie: str, blocking_model: str
) -> None:
    browser, session_id = await live_session(cookie, mode="text")
    await browser.send(type="text", text="note: Standup | Move it to 10:30")
    shown = await browser.expect("note")
    done = await browser.expect("turn_complete")
    assert (shown["title"], shown["body"]) == ("Standup", "Move it to 10:30")
    [call] = standin.connections[0].tool_calls
    assert call["name"] == "save_note"
    assert await notes_of(session_id) == [(call["id"], "Standup", "Move it to 10:30")]
    assert '"result": "saved"' in browser.transcript("model", done["turn"])
    assert await note_count() == 1
    await browser.close()
