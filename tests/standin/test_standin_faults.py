"""Scripted faults and session resumption of the Gemini Live stand-in, via the real SDK.

Refused setups, goAway, dropped connections, slow setups, slow replies and resumption
handles that restore the synthetic model's context. Times are asserted on the stand-in's own loop
clock (the ``Connection`` timestamps), never on wall-clock thresholds.
No Django here: like test_standin.py, these tests define their own fixtures.
"""

import asyncio
import itertools
import re
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from standin import Behaviour, ModelContext, StandIn, ThreadedStandIn
from standin.billing import Segment
from tests.standin.sdk import (
    PCM16K,
    collect_turn,
    connect,
    frame,
    handles,
    next_message,
    output_text,
    refused,
    resuming,
    summary,
    text_turn,
)

DURATION_JSON = re.compile(r"(\d+)(\.\d{3}|\.\d{6}|\.\d{9})?s")
CLOCK_SLACK_S = 1e-3  # asyncio may run a timer up to its clock resolution early


async def receive_until_error(
    session: Any, on_message: Callable[[int], None] = lambda count: None
) -> tuple[list[types.LiveServerMessage], errors.APIError]:
    """Every message received until the connection ends, and the error that ended it.

    ``on_message`` is called with the number of messages received after each one.
    """
    received: list[types.LiveServerMessage] = []
    with pytest.raises(errors.APIError) as info:
        await receive_forever(session, received, on_message)
    return received, info.value


async def receive_forever(
    session: Any, received: list[types.LiveServerMessage], on_message: Callable[[int], None]
) -> None:
    """Append every message to ``received``, turn after turn, until an error (5 s at most)."""
    async with asyncio.timeout(5):
        while True:
            async for message in session.receive():
                received.append(message)
                on_message(len(received))


def duration_s(time_left: str | None) -> float:
    """A protobuf Duration JSON string as the SDK delivers it, in seconds."""
    match = DURATION_JSON.fullmatch(time_left or "")
    assert match, time_left
    return float(time_left[:-1])


async def first_session_with_context(standin: StandIn) -> str:
    """One connection that hears a frame, audio and a text; the handle after its turn."""
    async with connect(standin, config=resuming()) as session:
        await session.send_realtime_input(video=frame((64, 48)))
        # Silence: counted as audio heard, but no utterance to reply to.
        await session.send_realtime_input(audio=types.Blob(data=bytes(16000), mime_type=PCM16K))
        await session.send_realtime_input(text="one")
        turn = await collect_turn(session)
        after = await next_message(session)
        # Heard after the handle was issued: not part of what the handle restores.
        await session.send_realtime_input(audio=types.Blob(data=bytes(9600), mime_type=PCM16K))
        await standin.wait_for(lambda: len(standin.connections[0].audio) == 2)

    assert handles(turn) == [("standin-0-0", True)]
    assert turn[0].session_resumption_update.resumable is True
    assert output_text(turn) == f'You said: "one". {summary("1 frames (latest 64x48)", "0.5")}'
    assert handles([after]) == [("standin-0-1", True)]
    return "standin-0-1"


@pytest.mark.asyncio
async def test_handles_follow_setup_and_turns_and_a_handle_resumes_its_context(
    standin: StandIn,
) -> None:
    handle = await first_session_with_context(standin)
    # The billed context: the frame (258 tokens at the default resolution) and 0.5 s of
    # silence, then the user text's turn and the 0.6 s reply.
    segments = (
        Segment(audio_s=Fraction(1, 2), image_tokens=258),
        Segment(audio_s=Fraction(3, 5), text_tokens=1),
    )
    assert standin.resumption_handles[handle] == ModelContext(
        turns_done=1, audio_s=0.5, frame_count=1, frame_size=(64, 48), texts=("one",),
        segments=segments,
    )  # fmt: skip
    assert standin.resumption_handles["standin-0-0"] == ModelContext()

    async with connect(standin, config=resuming(handle)) as session:
        turn = await text_turn(session, "two")
        after = await next_message(session)
    async with connect(standin, config=resuming()) as session:
        fresh = await text_turn(session, "three")

    assert output_text(turn) == f'You said: "two". {summary("1 frames (latest 64x48)", "0.5")}'
    assert handles(turn) == [("standin-1-1", True)]  # the turn counter continues too
    assert handles([after]) == [("standin-1-2", True)]
    assert standin.resumption_handles["standin-1-2"].texts == ("one", "two")
    assert output_text(fresh) == f'You said: "three". {summary()}'
    assert handles(fresh) == [("standin-2-0", True)]
    first, resumed, new = standin.connections
    assert (first.resumption_handle_sent, first.resumed_from) == (None, None)
    assert resumed.setup["sessionResumption"] == {"handle": handle}
    assert (resumed.resumption_handle_sent, resumed.resumed_from) == (handle, handle)
    assert resumed.texts == ["two"]  # the record holds this connection's input only
    assert (new.resumption_handle_sent, new.resumed_from) == (None, None)


@pytest.mark.asyncio
async def test_resumption_updates_off_sends_no_handles(standin: StandIn) -> None:
    standin.behaviour.resumption_updates = False
    async with connect(standin, config=resuming()) as session:
        turn = await text_turn(session, "quiet")
        await standin.push({"goAway": {"timeLeft": "9s"}})  # the next message, if no handle
        pushed = await next_message(session)

    assert handles([*turn, pushed]) == []
    assert pushed.go_away.time_left == "9s"
    assert output_text(turn) == f'You said: "quiet". {summary()}'
    assert standin.resumption_handles == {}


@pytest.mark.asyncio
async def test_an_unknown_handle_is_refused_with_1008_and_no_setup_complete(
    standin: StandIn,
) -> None:
    error = await refused(standin, config=resuming("made-up"))

    assert (error.code, error.details) == (1008, "Invalid session resumption handle.")
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert record.setup["sessionResumption"]["handle"] == "made-up"
    assert (record.resumption_handle_sent, record.resumed_from) == ("made-up", None)
    assert record.replies == []
    assert record.setup_complete_at is None
    assert (record.close_code, record.close_reason) == (1008, "Invalid session resumption handle.")
    assert record.aborted is False


@pytest.mark.asyncio
async def test_refuse_resumption_refuses_valid_handles_and_refuse_connections_all(
    standin: StandIn,
) -> None:
    async with connect(standin, config=resuming()) as session:
        handle, _ = handles([await next_message(session)])[0]
    assert handle in standin.resumption_handles

    standin.behaviour.refuse_resumption = True
    resumed = await refused(standin, config=resuming(handle))
    async with connect(standin, config=resuming()) as session:
        assert session.setup_complete is not None  # new sessions are still welcome
    standin.behaviour.refuse_resumption = False
    standin.behaviour.refuse_connections = True
    fresh = await refused(standin, config=resuming())
    valid = await refused(standin, config=resuming(handle))

    assert (resumed.code, resumed.details) == (1008, "Invalid session resumption handle.")
    assert (fresh.code, fresh.details) == (1011, "Service unavailable.")
    assert (valid.code, valid.details) == (1011, "Service unavailable.")
    await standin.wait_for(lambda: all(c.closed for c in standin.connections))
    records = standin.connections
    assert [c.close_code for c in records] == [1000, 1008, 1000, 1011, 1011]
    assert [c.resumed_from for c in records] == [None] * 5
    assert [c.resumption_handle_sent for c in records] == [None, handle, None, None, handle]
    assert [len(c.replies) for c in records] == [2, 0, 2, 0, 0]


@pytest.mark.asyncio
async def test_go_away_announces_the_time_left_then_closes_with_1000(standin: StandIn) -> None:
    async with connect(standin) as session:
        await standin.go_away(0.3)
        message = await next_message(session)
        received, error = await receive_until_error(session)

    assert message.go_away.time_left == "0.300s"
    assert duration_s(message.go_away.time_left) == pytest.approx(0.3)
    assert (received, error.code) == ([], 1000)
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert record.replies[-1] == {"goAway": {"timeLeft": "0.300s"}}
    assert record.close_code == 1000
    assert record.aborted is False
    assert record.opened_at <= record.setup_complete_at <= record.go_away_at
    assert record.closed_at >= record.go_away_at + 0.3 - CLOCK_SLACK_S


@pytest.mark.asyncio
async def test_go_away_without_close_leaves_the_connection_open(standin: StandIn) -> None:
    async with connect(standin) as session:
        await standin.go_away(2, close=False)
        message = await next_message(session)
        await standin.go_away(0.05, connection=0, close=False)
        await next_message(session)
        with pytest.raises(TimeoutError):  # no close comes when the 0.05 s are up
            await next_message(session, timeout=0.2)
        turn = await text_turn(session, "still here")

    assert message.go_away.time_left == "2s"
    assert output_text(turn) == f'You said: "still here". {summary()}'
    await standin.wait_for(lambda: standin.connections[0].closed)
    assert standin.connections[0].close_code == 1000  # closed by the client


@pytest.mark.asyncio
async def test_go_away_after_s_sends_go_away_and_closes_by_itself(standin: StandIn) -> None:
    standin.behaviour.go_away_after_s = 0.2
    standin.behaviour.go_away_time_left_s = 0.25
    async with connect(standin) as session:
        message = await next_message(session)
        received, error = await receive_until_error(session)

    assert message.go_away.time_left == "0.250s"
    assert (received, error.code) == ([], 1000)
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert record.go_away_at >= record.setup_complete_at + 0.2 - CLOCK_SLACK_S
    assert record.closed_at >= record.go_away_at + 0.25 - CLOCK_SLACK_S
    assert record.close_code == 1000


@pytest.mark.asyncio
async def test_abort_mid_turn_drops_the_connection_after_some_of_the_turn(
    standin: StandIn,
) -> None:
    async with connect(standin) as session:
        standin.abort_mid_turn(after_messages=2)
        await session.send_realtime_input(text="cut me off")
        received, error = await receive_until_error(session)

    assert error.code == 1006  # no close frame: an abnormal closure
    assert len(received) == 2  # the first audio chunk and the first transcription fragment
    assert received[0].server_content.model_turn.parts[0].inline_data.data
    assert output_text(received) == "You said: "
    assert not any(m.server_content.turn_complete for m in received)
    await standin.wait_for(lambda: standin.connections[0].closed)
    record = standin.connections[0]
    assert (record.aborted, record.close_code) == (True, 1006)
    assert len(record.replies) == 3  # setupComplete and the two messages
    assert record.closed_at >= record.setup_complete_at


def arm_at_3(standin: StandIn, count: int) -> None:
    """At the third message, arm abort_mid_turn for fewer messages than the turn sent."""
    if count == 3:
        standin.abort_mid_turn(after_messages=1)


@pytest.mark.asyncio
async def test_abort_mid_turn_drops_the_turn_playing_and_abort_drops_at_once(
    standin: StandIn,
) -> None:
    standin.behaviour.chunk_interval_s = 0.05
    async with connect(standin) as session:
        await session.send_realtime_input(text="one two three four five six seven eight")
        received, cut = await receive_until_error(session, partial(arm_at_3, standin))
    async with connect(standin) as session:
        await standin.abort()
        assert standin.connections[1].closed  # abort() waits until the connection ended
        nothing, dropped = await receive_until_error(session)

    assert cut.code == 1006
    assert 3 <= len(received) < 6
    assert not any(m.server_content.turn_complete for m in received)
    assert len(standin.connections[0].replies) == 1 + len(received)
    assert (nothing, dropped.code) == ([], 1006)
    records = standin.connections
    assert [(c.aborted, c.close_code) for c in records] == [(True, 1006), (True, 1006)]


@pytest.mark.asyncio
async def test_setup_delay_s_delays_setup_complete(standin: StandIn) -> None:
    standin.behaviour.setup_delay_s = 0.3
    async with connect(standin) as session:
        assert session.setup_complete is not None
    standin.behaviour.setup_delay_s = 0.0
    async with connect(standin) as session:
        assert session.setup_complete is not None

    slow, quick = standin.connections
    assert slow.setup_complete_at >= slow.opened_at + 0.3 - CLOCK_SLACK_S
    assert quick.setup_complete_at < quick.opened_at + 0.3
    assert slow.replies[0] == {"setupComplete": {}}


def test_threaded_standin_scripts_faults_from_sync_code(tmp_path: Path) -> None:
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=tmp_path) as threaded:

        async def talk() -> tuple[types.LiveServerMessage, int, int, int]:
            async with connect(threaded) as session:
                await asyncio.to_thread(threaded.go_away, 3, close=False)
                go_away = await next_message(session)
                await asyncio.to_thread(threaded.abort_mid_turn, after_messages=1)
                await session.send_realtime_input(text="hello")
                received, cut = await receive_until_error(session)
            async with connect(threaded) as session:
                await asyncio.to_thread(threaded.abort, connection=1)
                _, dropped = await receive_until_error(session)
            return go_away, len(received), cut.code, dropped.code

        go_away, count, cut, dropped = asyncio.run(talk())
        threaded.wait_for(lambda: all(c.closed for c in threaded.connections))
        records = threaded.connections

    assert go_away.go_away.time_left == "3s"
    assert (count, cut, dropped) == (1, 1006, 1006)
    assert [(c.aborted, c.close_code) for c in records] == [(True, 1006), (True, 1006)]
    assert records[0].go_away_at is not None


def test_threaded_standin_calls_tools_from_sync_code(tmp_path: Path) -> None:
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=tmp_path) as threaded:

        async def talk() -> tuple[str, types.LiveServerMessage, types.LiveServerMessage]:
            async with connect(threaded) as session:
                call_id = await asyncio.to_thread(threaded.call_tool, "lookup", {"q": 1})
                call = await next_message(session)
                response = types.FunctionResponse(id=call_id, name="lookup", response={"a": 2})
                await session.send_tool_response(function_responses=[response])
                await asyncio.to_thread(threaded.wait_for_tool_response, call_id)
                await collect_turn(session)  # the model's reply to the response
                await asyncio.to_thread(threaded.cancel_tool_calls, ["other"])
                cancellation = await next_message(session)
                return call_id, call, cancellation

        call_id, call, cancellation = asyncio.run(talk())
        records = threaded.connections

    assert call.tool_call.function_calls[0].args == {"q": 1}
    assert cancellation.tool_call_cancellation.ids == ["other"]
    assert records[0].tool_responses == [{"id": call_id, "name": "lookup", "response": {"a": 2}}]
    assert records[0].tool_cancellations == ["other"]


class RecordClock:
    """Stamps, on the stand-in's loop clock, when each text and reply was recorded.

    A ``StandIn.listeners`` callback: the stand-in calls it right after it records a
    client message or a reply it sent, so the stamps are the stand-in's own record times.
    """

    def __init__(self, standin: StandIn, connection: int = 0) -> None:
        self.standin = standin
        self.connection = connection
        self.texts: list[float] = []
        self.replies: list[float] = []
        standin.listeners.append(self)

    def __call__(self) -> None:
        """Stamp whatever was recorded since the last call."""
        records = self.standin.connections
        if len(records) <= self.connection:
            return
        record = records[self.connection]
        now = asyncio.get_running_loop().time()
        self.texts += [now] * (len(record.texts) - len(self.texts))
        self.replies += [now] * (len(record.replies) - len(self.replies))


@pytest.mark.asyncio
async def test_reply_delay_s_holds_each_reply_back_and_chunk_interval_s_paces_it(
    standin: StandIn,
) -> None:
    standin.behaviour.reply_delay_s = 0.6
    standin.behaviour.chunk_interval_s = 0.05
    clock = RecordClock(standin)
    async with connect(standin) as session:
        await session.send_realtime_input(text="slow one two three four five six")
        await standin.wait_for(lambda: standin.connections[0].texts)
        # Nothing comes back within a wait shorter than the delay...
        with pytest.raises(TimeoutError):
            await next_message(session, timeout=0.2)
        assert len(standin.connections[0].replies) == 1  # setupComplete only
        # ...and then the whole reply comes.
        turn = await collect_turn(session)
        standin.behaviour.reply_delay_s = standin.behaviour.chunk_interval_s = 0.0
        quick = await text_turn(session, "quick")

    expected = f'You said: "slow one two three four five six". {summary()}'
    assert output_text(turn) == expected
    assert output_text(quick) == f'You said: "quick". {summary()}'
    record = standin.connections[0]
    parts = len([m for m in turn if m.server_content and m.server_content.model_turn])
    assert parts > 2
    # The stand-in's own schedule: the first reply message came reply_delay_s after the
    # text was recorded, and each later step of the reply chunk_interval_s after the last.
    heard, first_reply = clock.texts[0], clock.replies[1]
    assert first_reply >= heard + 0.6 - CLOCK_SLACK_S
    # Steps: an audio chunk with its transcription fragment each, the IN_PROGRESS
    # turnComplete, generationComplete, then the final turnComplete.
    sent = record.replies[1 : 1 + len(turn)]
    starts = [
        at
        for at, reply in zip(clock.replies[1 : 1 + len(turn)], sent, strict=True)
        if "outputTranscription" not in reply["serverContent"]
    ]
    assert len(starts) == parts + 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(gap >= 0.05 - CLOCK_SLACK_S for gap in gaps)
    assert record.texts == ["slow one two three four five six", "quick"]
