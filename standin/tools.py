"""Function calls of the stand-in's synthetic model: behaviours, scheduling and replies.

A call's behaviour is its declaration's ``behavior`` or the model's default
(:class:`standin.profiles.ModelProfile`). A BLOCKING call holds the model's reply until
the response comes, then a reply turn quotes it. A NON_BLOCKING call does not: the turn
that made it goes on with a short spoken reply, and the response's ``scheduling`` decides
what follows: SILENT nothing (recorded only), WHEN_IDLE (the default) a reply turn after
whatever is playing, INTERRUPT a reply turn that cuts the one playing. Every toolCall is
followed by a session resumption handle, ``resumable: false`` while the call is pending.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from standin.protocol import InvalidInput, Outgoing, as_list
from standin.records import PendingCall
from standin.state import SessionState
from standin.turns import Turn

logger = logging.getLogger(__name__)

BLOCKING, NON_BLOCKING = "BLOCKING", "NON_BLOCKING"
SILENT, WHEN_IDLE, INTERRUPT = "SILENT", "WHEN_IDLE", "INTERRUPT"
SCHEDULINGS = frozenset({SILENT, WHEN_IDLE, INTERRUPT})
NOTE_FUNCTION = "save_note"
NOTE_TITLE_CHARS = 60  # a note's title when the user text gives none


class ToolDesk:
    """The calls one connection's model makes, and the responses that come to it."""

    def __init__(self, state: SessionState) -> None:
        self._state = state

    def calling(self, name: str, args: dict[str, Any], call_id: str = "") -> list[Outgoing]:
        """The toolCall of a new pending call, and the (non-resumable) handle after it."""
        state = self._state
        call_id = call_id or state.host.new_call_id()
        behaviour = state.config.behaviour_of(name) if state.config else BLOCKING
        record = state.record
        state.host.remember_tool_call(
            PendingCall(call_id, name, record.index, state.conversation, behaviour)
        )
        call = {"id": call_id, "name": name, "args": args}
        record.tool_calls.append(call)
        logger.info("Connection #%s: calling %s (%s, %s)", record.index, name, call_id, behaviour)
        return [{"toolCall": {"functionCalls": [call]}}, *state.resumption_update()]

    async def call(self, name: str, args: dict[str, Any], call_id: str) -> None:
        """Call a function now, outside the turn queue."""
        await self._state.send_all(self.calling(name, args, call_id))

    async def cancel(self, ids: list[str]) -> None:
        """Withdraw calls: send ``toolCallCancellation``; late responses get no reply."""
        state = self._state
        took = [state.host.take_tool_call(call_id) for call_id in ids]
        state.record.tool_cancellations.extend(ids)
        await state.send_all([{"toolCallCancellation": {"ids": list(ids)}}])
        logger.info("Connection #%s: tool calls %s cancelled", state.record.index, ids)
        if any(took):
            await state.announce_if_resumable()

    async def on_response(self, body: dict[str, Any]) -> None:
        """Record each function response; one to a pending call is answered as it says."""
        state = self._state
        responses = as_list(body.get("functionResponses") or [], "functionResponses")
        for index, response in enumerate(responses):
            state.record.tool_responses.append(response)
            if not isinstance(response, dict):
                continue
            when = scheduling(response, index)
            call_id = response.get("id")
            call = state.host.take_tool_call(call_id) if isinstance(call_id, str) else None
            if call is None:
                continue
            logger.info("Connection #%s: response to %s (%s)", state.record.index, call_id, when)
            reply = Turn(returned_reply(call.name, response), "TEXT", tool_use=True)
            if call.behaviour == BLOCKING or when == WHEN_IDLE:
                state.speaker.queue.put(reply)
            elif when == INTERRUPT:
                state.speaker.queue.put(reply, first=True)
                await state.cut_playing()
            else:  # SILENT: into the context, and no reply
                await state.announce_if_resumable()


def scheduling(response: dict[str, Any], index: int) -> str:
    """SILENT, WHEN_IDLE or INTERRUPT: how a function response is to be scheduled."""
    value = response.get("scheduling")
    if value is None or str(value).upper() == "SCHEDULING_UNSPECIFIED":
        return WHEN_IDLE
    text = str(value).upper()
    if text not in SCHEDULINGS:
        raise InvalidInput(f"Invalid value at 'function_responses[{index}].scheduling'.")
    return text


def returned_reply(name: str, response: dict[str, Any]) -> str:
    """The reply turn that quotes a function response."""
    return f"Function {name} returned {json.dumps(response.get('response'), sort_keys=True)}."


def calling_reply(name: str) -> str:
    """What the model says in the turn that made a NON_BLOCKING call."""
    return f"Calling {name}."


def note_args(text: str, trigger: str | None) -> dict[str, str] | None:
    """The save_note arguments a user text asks for, or None if it holds no ``trigger``."""
    found = _find(text, trigger)
    if found is None:
        return None
    rest = text[found:].strip()
    if "|" in rest:
        title, body = (part.strip() for part in rest.split("|", 1))
    else:
        title, body = rest[:NOTE_TITLE_CHARS].strip(), rest
    return {"title": title, "body": body}


def holds_trigger(text: str, trigger: str | None) -> bool:
    """Whether ``text`` holds ``trigger`` (case-insensitive; None or empty: never)."""
    return _find(text, trigger) is not None


def _find(text: str, trigger: str | None) -> int | None:
    """Where ``text`` goes on after ``trigger``, or None."""
    if not trigger:
        return None
    found = re.search(re.escape(trigger), text, re.IGNORECASE)
    return found.end() if found else None
