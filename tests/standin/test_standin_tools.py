"""Function calls of the stand-in per model: blocking, non-blocking and scheduled replies.

On ``gemini-3.8-live`` calls do not block: the turn that made one goes on, and the
response's scheduling (SILENT, WHEN_IDLE, INTERRUPT) decides what follows. While a call is
pending, every session resumption handle is ``resumable: false`` and cannot be resumed.
"""

from typing import Any

import pytest
from google.genai import types

from standin import StandIn
from tests.standin.sdk import (
    BLOCKING_MODEL,
    audio_config,
    collect_turn,
    connect,
    fixed_usage,
    function_response,
    handles,
    kinds,
    next_message,
    output_text,
    refused,
    resuming,
    summary,
    text_turn,
)

THREE_EIGHT, LEGACY = "gemini-3.8-live", "gemini-3.1-flash-live-preview"


def updates(replies: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(handle, resumable) of every sessionResumptionUpdate the stand-in sent."""
    return [
        (
            reply["sessionResumptionUpdate"]["newHandle"],
            reply["sessionResumptionUpdate"]["resumable"],
        )
        for reply in replies
        if "sessionResumptionUpdate" in reply
    ]


@pytest.mark.asyncio
async def test_a_non_blocking_call_lets_the_turn_go_on_and_the_answer_comes_when_idle(
    standin: StandIn,
) -> None:
    fixed_usage(standin, 100, 50)
    async with connect(standin, THREE_EIGHT, resuming()) as session:
        calling = await text_turn(session, "note: Standup | at 10:30")
        await standin.wait_for(lambda: len(updates(standin.connections[0].replies)) == 3)
        [call] = next(m for m in calling if m.tool_call).tool_call.function_calls
        await session.send_tool_response(
            function_responses=function_response(call.id, "save_note", ok=True)
        )
        answered = await collect_turn(session)
        await standin.wait_for(lambda: len(updates(standin.connections[0].replies)) == 4)

    record = standin.connections[0]
    assert (call.name, call.args) == ("save_note", {"title": "Standup", "body": "at 10:30"})
    # The calling turn went on without waiting: a short spoken reply and turnComplete.
    assert output_text(calling) == "Calling save_note."
    assert calling[-1].server_content.turn_complete is True
    assert kinds(record.replies)[:5] == [
        "setupComplete", "sessionResumptionUpdate", "toolCall", "sessionResumptionUpdate", "audio"
    ]  # fmt: skip
    # Taken while the call was pending: not resumable, nor the one after the turn.
    assert updates(record.replies) == [
        ("standin-0-0", True), ("standin-0-0.1", False), ("standin-0-1", False),
        ("standin-0-2", True),
    ]  # fmt: skip
    assert output_text(answered) == 'Function save_note returned {"ok": true}.'
    usage = answered[-1].usage_metadata
    assert (usage.tool_use_prompt_token_count, usage.total_token_count) == (10, 160)
    details = usage.tool_use_prompt_tokens_details
    assert [(d.modality, d.token_count) for d in details] == [(types.MediaModality.TEXT, 10)]
    assert record.tool_responses == [{"id": call.id, "name": "save_note", "response": {"ok": True}}]
    assert standin.pending_tool_calls == {}


@pytest.mark.asyncio
async def test_a_silent_response_is_recorded_only(standin: StandIn) -> None:
    async with connect(standin, THREE_EIGHT, resuming()) as session:
        assert handles([await next_message(session)]) == [("standin-0-0", True)]
        call_id = await standin.call_tool("lookup", {"q": "x"})
        message = await next_message(session)
        assert handles([await next_message(session)]) == [("standin-0-0.1", False)]
        await session.send_tool_response(
            function_responses=function_response(call_id, "lookup", "SILENT", n=1)
        )
        resumable = await next_message(session)  # settled: the session may be resumed again
        turn = await text_turn(session, "anything new?")

    assert message.tool_call.function_calls[0].id == call_id
    assert handles([resumable]) == [("standin-0-0.2", True)]
    assert output_text(turn) == f'You said: "anything new?". {summary()}'  # no reply came between
    record = standin.connections[0]
    assert record.tool_responses == [
        {"id": call_id, "name": "lookup", "response": {"n": 1}, "scheduling": "SILENT"}
    ]
    assert "Function lookup" not in "".join(
        reply.get("serverContent", {}).get("outputTranscription", {}).get("text", "")
        for reply in record.replies
    )


@pytest.mark.asyncio
async def test_an_interrupt_response_cuts_the_turn_playing(standin: StandIn) -> None:
    fixed_usage(standin, 100, 50)
    standin.behaviour.reply_audio_s = 2.0
    standin.behaviour.chunk_interval_s = 0.05
    async with connect(standin, THREE_EIGHT) as session:
        await session.send_realtime_input(text="tell me a long story")
        first = await next_message(session)
        call_id = await standin.call_tool("lookup", {})
        cut: list[types.LiveServerMessage] = [first]
        async for message in session.receive():
            cut.append(message)
            if message.tool_call:
                response = function_response(call_id, "lookup", "INTERRUPT", found=3)
                await session.send_tool_response(function_responses=response)
        standin.behaviour.chunk_interval_s = 0.0
        reply = await collect_turn(session)

    assert cut[-2].server_content.interrupted is True
    assert cut[-1].server_content.turn_complete is True
    assert cut[-1].usage_metadata.total_token_count == 150
    assert len([m for m in cut if m.server_content and m.server_content.model_turn]) < 20
    assert output_text(reply) == 'Function lookup returned {"found": 3}.'
    assert reply[-1].usage_metadata.tool_use_prompt_token_count == 10
    sent = kinds(standin.connections[0].replies)
    at = sent.index("interrupted")
    assert sent[at + 1 : at + 3] == ["complete", "audio"]  # then the reply turn at once


@pytest.mark.asyncio
async def test_a_when_idle_response_waits_for_the_turn_playing(standin: StandIn) -> None:
    standin.behaviour.chunk_interval_s = 0.02
    async with connect(standin, THREE_EIGHT) as session:
        await session.send_realtime_input(text="talk to me")
        first = await next_message(session)
        call_id = await standin.call_tool("lookup", {})
        response = function_response(call_id, "lookup", "WHEN_IDLE", found=1)
        await session.send_tool_response(function_responses=response)
        talk = [first, *await collect_turn(session)]
        reply = await collect_turn(session)

    assert output_text(talk) == f'You said: "talk to me". {summary()}'  # whole
    assert not any(m.server_content and m.server_content.interrupted for m in talk)
    assert output_text(reply) == 'Function lookup returned {"found": 1}.'


@pytest.mark.asyncio
@pytest.mark.parametrize("model", [BLOCKING_MODEL, LEGACY])
async def test_blocking_calls_hold_the_reply_and_ignore_scheduling(
    standin: StandIn, model: str
) -> None:
    async with connect(standin, model) as session:
        await session.send_realtime_input(text="note: groceries")
        message = await next_message(session)
        [call] = message.tool_call.function_calls
        args = {"title": "groceries", "body": "groceries"}
        assert standin.connections[0].replies[-1] == {
            "toolCall": {"functionCalls": [{"id": call.id, "name": "save_note", "args": args}]}
        }
        # SILENT applies to non-blocking calls only: a blocking call's reply comes anyway.
        await session.send_tool_response(
            function_responses=function_response(call.id, "save_note", "SILENT")
        )
        reply = await collect_turn(session)

    assert output_text(reply) == "Function save_note returned {}."
    assert kinds(standin.connections[0].replies).count("complete") == 1


@pytest.mark.asyncio
async def test_a_declared_behaviour_overrides_the_model_default(standin: StandIn) -> None:
    function = types.FunctionDeclaration(name="save_note", behavior=types.Behavior.NON_BLOCKING)
    config = audio_config(tools=[types.Tool(function_declarations=[function])])
    async with connect(standin, BLOCKING_MODEL, config) as session:
        calling = await text_turn(session, "note: x")

    assert output_text(calling) == "Calling save_note."
    assert [call.behaviour for call in standin.pending_tool_calls.values()] == ["NON_BLOCKING"]


@pytest.mark.asyncio
async def test_a_handle_taken_while_a_call_is_pending_is_not_resumable(standin: StandIn) -> None:
    async with connect(standin, THREE_EIGHT, resuming()) as session:
        [(resumable, _)] = handles([await next_message(session)])
        await standin.call_tool("lookup", {})
        await next_message(session)
        [(pending, flag)] = handles([await next_message(session)])
        error = await refused(standin, THREE_EIGHT, resuming(pending))
        async with connect(standin, THREE_EIGHT, resuming(resumable)) as resumed:
            assert resumed.setup_complete is not None

    assert (resumable, pending, flag) == ("standin-0-0", "standin-0-0.1", False)
    assert (error.code, error.details) == (1007, "Session resumption handle is not resumable.")
    assert standin.connections[1].resumed_from is None
    assert standin.connections[2].resumed_from == resumable


@pytest.mark.asyncio
async def test_go_away_while_a_call_is_pending_and_the_response_on_the_next_connection(
    standin: StandIn,
) -> None:
    async with connect(standin, THREE_EIGHT, resuming()) as old:
        [(before, _)] = handles([await next_message(old)])
        call_id = await standin.call_tool("lookup", {"q": 1})
        await standin.go_away(5.0)
        received = [await next_message(old) for _ in range(3)]
        async with connect(standin, THREE_EIGHT, resuming(before)) as new:
            await new.send_tool_response(
                function_responses=function_response(call_id, "lookup", v=2)
            )
            reply = await collect_turn(new)

    assert received[0].tool_call.function_calls[0].id == call_id
    assert handles(received) == [("standin-0-0.1", False)]
    assert received[2].go_away.time_left == "5s"
    assert standin.tool_responses(call_id) == [
        (1, {"id": call_id, "name": "lookup", "response": {"v": 2}})
    ]
    assert output_text(reply) == 'Function lookup returned {"v": 2}.'
    assert standin.connections[1].resumed_from == before
    assert updates(standin.connections[1].replies)[-1] == ("standin-1-1", True)
    assert standin.pending_tool_calls == {}


@pytest.mark.asyncio
async def test_a_cancelled_call_makes_the_session_resumable_again(standin: StandIn) -> None:
    async with connect(standin, THREE_EIGHT, resuming()) as session:
        await next_message(session)
        await standin.call_tool("lookup", {}, call_id="c-1")
        during = [await next_message(session) for _ in range(2)]
        await standin.cancel_tool_calls(["c-1"])
        after = [await next_message(session) for _ in range(2)]

    assert handles(during) == [("standin-0-0.1", False)]
    assert after[0].tool_call_cancellation.ids == ["c-1"]
    assert handles(after) == [("standin-0-0.2", True)]
