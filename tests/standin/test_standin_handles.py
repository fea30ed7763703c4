"""Scripted closes and session resumption refusals of the stand-in, via the real SDK.

Closes with 1007/1008/1011 reach the SDK as ``errors.APIError`` with the code and the
reason; a resumption may be refused while the old connection is open (1011), after a
deadline expired the conversation or the handle's lifetime passed (1007).
"""

import asyncio
from pathlib import Path

import pytest
from google.genai import errors

from standin import Behaviour, StandIn, ThreadedStandIn
from tests.standin.sdk import (
    connect,
    handles,
    next_message,
    output_text,
    refused,
    resuming,
    summary,
    text_turn,
)

MODEL = "gemini-3.8-live"
EXPIRED = "Session resumption handle has expired."


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1007, "Request contains an invalid argument."),
        (1008, "Quota exceeded for quota metric."),
        (1011, "Internal error encountered."),
    ],
)
async def test_the_sdk_sees_each_close_code_and_reason(
    standin: StandIn, code: int, reason: str
) -> None:
    async with connect(standin) as session:
        await standin.disconnect(code=code, reason=reason)
        with pytest.raises(errors.APIError) as info:
            await next_message(session)

    error = info.value
    # A close reason is a plain string: the SDK keeps it as details, no message or status.
    assert (error.code, error.details, error.message, error.status) == (code, reason, None, None)
    assert str(error) == f"{code} None. {reason}"
    await standin.wait_for(lambda: standin.connections[0].closed)
    assert (standin.connections[0].close_code, standin.connections[0].close_reason) == (
        code,
        reason,
    )


async def first_handle(standin: StandIn, session: object) -> str:
    """The handle that follows setupComplete."""
    [(handle, resumable)] = handles([await next_message(session)])
    assert resumable
    return handle


@pytest.mark.asyncio
async def test_overlapping_resumption_is_refused_until_the_old_connection_closed(
    standin: StandIn,
) -> None:
    standin.behaviour.refuse_overlapping_resumption = True
    async with connect(standin, MODEL, resuming()) as old:
        handle = await first_handle(standin, old)
        await text_turn(old, "remember me")
        overlapping = await refused(standin, MODEL, resuming(handle))
    await standin.wait_for(lambda: standin.connections[0].closed)
    async with connect(standin, MODEL, resuming(handle)) as resumed:
        turn = await text_turn(resumed, "back")

    reason = "The session is still active on another connection."
    assert (overlapping.code, overlapping.details) == (1011, reason)
    assert standin.connections[1].close_reason == reason
    assert standin.connections[1].resumed_from is None
    assert standin.connections[2].resumed_from == handle
    assert standin.connections[2].conversation == 0
    assert output_text(turn) == f'You said: "back". {summary()}'


@pytest.mark.asyncio
async def test_a_deadline_expires_every_handle_of_the_conversation(standin: StandIn) -> None:
    async with connect(standin, MODEL, resuming()) as first:
        handle = await first_handle(standin, first)
    async with connect(standin, MODEL, resuming(handle)) as second:
        later = await first_handle(standin, second)
        await standin.deadline_expire()
        with pytest.raises(errors.APIError) as closed:
            await next_message(second)
    from_first = await refused(standin, MODEL, resuming(handle))
    from_second = await refused(standin, MODEL, resuming(later))
    async with connect(standin, MODEL, resuming()) as fresh:
        turn = await text_turn(fresh, "start over")

    deadline = "Deadline expired before operation could complete."
    assert (closed.value.code, closed.value.details) == (1011, deadline)
    assert (from_first.code, from_first.details) == (1007, EXPIRED)
    assert (from_second.code, from_second.details) == (1007, EXPIRED)
    assert output_text(turn) == f'You said: "start over". {summary()}'
    records = standin.connections
    assert [c.conversation for c in records] == [0, 0, None, None, 4]
    assert all(standin.handles.issued[h].expired for h in (handle, later))
    assert not standin.handles.issued["standin-4-0"].expired


@pytest.mark.asyncio
async def test_handles_older_than_their_lifetime_have_expired(standin: StandIn) -> None:
    async with connect(standin, MODEL, resuming()) as session:
        handle = await first_handle(standin, session)
    standin.behaviour.handle_ttl_s = 0.0  # every handle is older than that
    expired = await refused(standin, MODEL, resuming(handle))
    standin.behaviour.handle_ttl_s = 3600.0
    async with connect(standin, MODEL, resuming(handle)) as resumed:
        assert resumed.setup_complete is not None

    assert (expired.code, expired.details) == (1007, EXPIRED)
    assert standin.connections[2].resumed_from == handle


@pytest.mark.asyncio
async def test_the_old_refusals_still_hold(standin: StandIn) -> None:
    unknown = await refused(standin, MODEL, resuming("made-up"))
    async with connect(standin, MODEL, resuming()) as session:
        handle = await first_handle(standin, session)
    standin.behaviour.refuse_resumption = True
    valid = await refused(standin, MODEL, resuming(handle))
    standin.behaviour.refuse_resumption = False
    standin.behaviour.refuse_connections = True
    any_setup = await refused(standin, MODEL)

    assert (unknown.code, unknown.details) == (1008, "Invalid session resumption handle.")
    assert (valid.code, valid.details) == (1008, "Invalid session resumption handle.")
    assert (any_setup.code, any_setup.details) == (1011, "Service unavailable.")


def test_threaded_standin_scripts_the_new_faults(tmp_path: Path) -> None:
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=tmp_path) as threaded:

        async def talk() -> tuple[list[BaseException], errors.APIError, errors.APIError]:
            seen: list[BaseException] = []
            async with connect(threaded, MODEL, resuming()) as session:
                [(handle, _)] = handles([await next_message(session)])
                await asyncio.to_thread(threaded.push_unknown, "sessionWarning", {"n": 1})
                await asyncio.to_thread(threaded.push_raw, "{oops")
                for _ in range(2):
                    try:
                        await next_message(session)
                    except (TypeError, ValueError) as error:
                        seen.append(error)
                await asyncio.to_thread(threaded.deadline_expire)
                with pytest.raises(errors.APIError) as closed:
                    await next_message(session)
            return seen, closed.value, await refused(threaded, MODEL, resuming(handle))

        seen, closed, expired = asyncio.run(talk())
        records = threaded.connections

    assert [type(error) for error in seen] == [TypeError, ValueError]
    assert (closed.code, expired.code, expired.details) == (1011, 1007, EXPIRED)
    assert records[0].replies[2:4] == [{"sessionWarning": {"n": 1}}, {"raw": "{oops"}]
