"""The functions the model may call during a live session, and how their calls are run.

Every tool is registered here, in one place: an async handler plus its declaration as
data (a :class:`~sessions_app.live.config.FunctionSpec`: name, description, parameter
schema), joined by the :func:`tool` decorator. The specs go into the Live session's
config (``live.client.build_connect_config`` makes the SDK's declarations of them); a
:class:`ToolRunner` per session runs the model's calls. Nothing here imports the SDK.

A call's arguments are checked against its declaration before the handler runs (types,
required and unknown fields, string lengths); a handler refuses anything else it cannot
accept by raising :class:`ToolError`. Either way the model gets ``{"error": "..."}`` as
the function response; an unknown function or a handler that fails gets one too. A tool
call never crashes the session.

Each call runs in its own task, so a slow tool never blocks the receive loop. A
``toolCallCancellation`` cancels the calls it names that are still running, and their
responses are never sent. Side effects a handler shields with
:meth:`ToolContext.uninterruptible` still run to their end: once save_note has started
writing a note, the note is kept (and shown in the browser) even if the call is
cancelled; only the response to the model is dropped.
"""

import asyncio
import functools
import inspect
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from channels.db import database_sync_to_async

from sessions_app import outbound, services
from sessions_app.events_log import log_event
from sessions_app.live.config import FunctionSpec
from sessions_app.live.events import FunctionCall, FunctionResult
from sessions_app.models import Note

logger = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[..., Awaitable[dict[str, Any]]]
Respond = Callable[[FunctionResult], Awaitable[None]]
Show = Callable[[str], Awaitable[None]]

CLOSE_TIMEOUT_S = 5.0
# C0 controls but tab, newline and carriage return; DEL; lone surrogates (not storable).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "INTEGER": (int,),
    "NUMBER": (int, float),
    "BOOLEAN": (bool,),
    "ARRAY": (list,),
    "OBJECT": (dict,),
}
# What a model that runs calls without blocking does with a response (the Live API's
# FunctionResponseScheduling): only keep it, speak about it when idle, or at once.
SILENT, WHEN_IDLE, INTERRUPT = "SILENT", "WHEN_IDLE", "INTERRUPT"


class ToolError(Exception):
    """A call the tool cannot carry out; the model gets ``{"error": message}``."""


@dataclass(frozen=True)
class ToolContext:
    """What a handler knows of the call and the session it runs in."""

    session_id: uuid.UUID
    call_id: str
    show: Show = field(repr=False)
    keep: Callable[[Awaitable[Any]], Awaitable[Any]] = field(repr=False)

    async def uninterruptible(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to its end even if the call is cancelled meanwhile.

        For side effects that must not stop half-way (a stored note must also reach the
        page); the call itself still ends as cancelled, without a response.
        """
        return await self.keep(awaitable)


@dataclass(frozen=True)
class Tool:
    """One function the model may call.

    ``scheduling`` says what a model that runs calls without blocking does with the
    response: SILENT only adds it to the context (the model does not stop talking to say
    so), WHEN_IDLE or INTERRUPT make it speak about it.
    """

    spec: FunctionSpec
    handler: Handler
    scheduling: str = WHEN_IDLE

    @property
    def name(self) -> str:
        """The function's name, as the model calls it."""
        return self.spec.name


class ToolRegistry:
    """The tools offered to the model, by name."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, spec: FunctionSpec, handler: Handler, scheduling: str = WHEN_IDLE) -> Tool:
        """Offer ``handler`` to the model as ``spec`` describes it."""
        if not spec.name:
            raise ValueError("A tool's declaration needs a name.")
        if spec.name in self._tools:
            raise ValueError(f"A tool named {spec.name!r} is already registered.")
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"The handler of {spec.name!r} must be an async function.")
        if scheduling not in (SILENT, WHEN_IDLE, INTERRUPT):
            raise ValueError(f"Unknown scheduling {scheduling!r}.")
        registered = self._tools[spec.name] = Tool(spec, handler, scheduling)
        return registered

    def unregister(self, name: str) -> None:
        """Stop offering the tool ``name`` to new sessions (tests offer one for a test)."""
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, if there is one."""
        return self._tools.get(name)

    def specs(self) -> list[FunctionSpec]:
        """Every tool's declaration, for the session config."""
        return [item.spec for item in self._tools.values()]

    async def call(self, ctx: ToolContext, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one call and return its function response; errors become ``{"error": ...}``."""
        found = self.get(name)
        if found is None:
            return {"error": f"Unknown function {name!r}."}
        try:
            check_args(found.spec, args)
            result = await found.handler(ctx, **args)
        except ToolError as exc:
            return {"error": str(exc)}
        if not isinstance(result, dict):
            raise TypeError(f"Tool {name!r} returned {type(result).__name__}, not a dict.")
        return result


registry = ToolRegistry()


def tool(
    *,
    name: str,
    description: str,
    parameters: dict[str, Any],
    scheduling: str = WHEN_IDLE,
    into: ToolRegistry | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated async handler as the function these arguments describe."""

    def decorate(handler: Handler) -> Handler:
        spec = FunctionSpec(name=name, description=description, parameters=parameters)
        (into or registry).register(spec, handler, scheduling)
        return handler

    return decorate


def check_args(spec: FunctionSpec, args: Any) -> None:
    """Check ``args`` against the declared parameters; ToolError says what is wrong."""
    if not isinstance(args, dict):
        raise ToolError("The arguments must be an object.")
    properties: dict[str, Any] = dict(spec.parameters.get("properties") or {})
    unknown = sorted(set(args) - set(properties))
    if unknown:
        raise ToolError(f"Unknown argument(s): {', '.join(unknown)}.")
    missing = [name for name in spec.parameters.get("required") or [] if name not in args]
    if missing:
        raise ToolError(f"Missing argument(s): {', '.join(missing)}.")
    for name, value in args.items():
        _check_value(name, properties[name], value)


def _check_value(name: str, schema: dict[str, Any], value: Any) -> None:
    """Check one argument's type and, for a string, its length."""
    kind = str(schema.get("type") or "").upper()
    if (expected := _JSON_TYPES.get(kind)) is not None:
        wrong_bool = isinstance(value, bool) and bool not in expected
        if wrong_bool or not isinstance(value, expected):
            raise ToolError(f"Argument {name!r} must be of type {kind.lower()}.")
    if isinstance(value, str):
        shortest, longest = schema.get("min_length"), schema.get("max_length")
        if shortest is not None and len(value) < shortest:
            raise ToolError(f"Argument {name!r} must have at least {shortest} characters.")
        if longest is not None and len(value) > longest:
            raise ToolError(f"Argument {name!r} must have at most {longest} characters.")


class ToolRunner:
    """Runs one session's tool calls as tasks and answers each through ``respond``."""

    def __init__(
        self,
        *,
        session_id: uuid.UUID,
        respond: Respond,
        show: Show,
        tools: ToolRegistry | None = None,
        user_id: Any = None,
        non_blocking: bool = False,
    ) -> None:
        self.session_id = session_id
        self.non_blocking = non_blocking  # responses then carry the tool's scheduling
        self.user_id = user_id
        self._respond = respond
        self._show = show
        self._tools = tools or registry
        self._running: dict[str, asyncio.Task[None]] = {}
        self._kept: set[asyncio.Future[Any]] = set()
        self._closed = False

    @property
    def running(self) -> list[str]:
        """The ids of the calls still running (a diagnostic hook: tests check it is empty)."""
        return list(self._running)

    def start(self, call: FunctionCall) -> None:
        """Run one call in the background; a call without an id cannot be answered."""
        if self._closed:
            return
        if not call.id:
            logger.warning("Session %s: tool call %r without an id ignored", self.session_id, call)
            return
        if call.id in self._running:
            logger.warning("Session %s: tool call %s is already running", self.session_id, call.id)
            return
        task = asyncio.create_task(self._run(call), name=f"tool-{call.name}")
        self._running[call.id] = task
        task.add_done_callback(functools.partial(self._finished, call.id))

    def cancel(self, ids: Iterable[str]) -> list[str]:
        """Cancel the calls named that are still running; return their ids."""
        cancelled = []
        for call_id in ids:
            task = self._running.pop(call_id, None)
            if task is not None and not task.done():
                task.cancel()
                cancelled.append(call_id)
        return cancelled

    async def close(self) -> None:
        """Cancel every running call and let uninterruptible work finish (bounded).

        Calls that arrive later are ignored: the session is ending.
        """
        self._closed = True
        tasks = list(self._running.values())
        self.cancel(list(self._running))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._kept:
            await asyncio.wait(set(self._kept), timeout=CLOSE_TIMEOUT_S)

    def _finished(self, call_id: str, task: asyncio.Task[None]) -> None:
        """A call's task ended: it no longer runs."""
        if self._running.get(call_id) is task:
            del self._running[call_id]

    async def _run(self, call: FunctionCall) -> None:
        """Run the handler and send its response, unless the call is cancelled first."""
        ctx = ToolContext(
            session_id=self.session_id, call_id=call.id, show=self._show_safely, keep=self._keep
        )
        outcome = "ok"
        try:
            try:
                result = await self._tools.call(ctx, call.name, call.args)
            except Exception:
                logger.exception("Session %s: tool %s failed", self.session_id, call.name)
                result = {"error": "The tool failed unexpectedly."}
            if "error" in result:
                outcome = "error"
            found = self._tools.get(call.name)
            scheduling = found.scheduling if self.non_blocking and found is not None else None
            response = FunctionResult(
                id=call.id, name=call.name, response=result, scheduling=scheduling
            )
            try:
                await self._respond(response)
            except Exception:
                logger.exception("Session %s: tool response not sent", self.session_id)
                outcome = "unsent"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            log_event(
                "tool_call", session_id=self.session_id, user_id=self.user_id,
                tool=call.name[:64], call_id=call.id[:64], outcome=outcome,
            )  # fmt: skip

    async def _keep(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` in a task a cancellation of the call does not stop."""
        future = asyncio.ensure_future(awaitable)
        self._kept.add(future)
        future.add_done_callback(self._kept.discard)
        future.add_done_callback(self._log_failure)
        return await asyncio.shield(future)

    def _log_failure(self, future: asyncio.Future[Any]) -> None:
        """Log a failure of uninterruptible work nobody awaits any more."""
        if not future.cancelled() and future.exception() is not None:
            logger.error(
                "Session %s: tool work failed", self.session_id, exc_info=future.exception()
            )

    async def _show_safely(self, message: str) -> None:
        """Send a message to the browser; one that has gone away is not the tool's failure."""
        try:
            await self._show(message)
        except Exception:  # noqa: BLE001 - best effort: the browser may be gone
            logger.info("Session %s: browser gone, tool message not shown", self.session_id)


# The tools.

NOTE_TITLE_MAX = 200
NOTE_BODY_MAX = 10_000


@tool(
    name="save_note",
    description=(
        "Save a note for the user, for example a summary, a to-do or something the user"
        " asked you to remember. It appears in the user's notes panel and stays with"
        " the session."
    ),
    parameters={
        "type": "OBJECT",
        "properties": {
            "title": {
                "type": "STRING",
                "description": "A short title, one line.",
                "min_length": 1,
                "max_length": NOTE_TITLE_MAX,
            },
            "body": {
                "type": "STRING",
                "description": "The note itself.",
                "min_length": 1,
                "max_length": NOTE_BODY_MAX,
            },
        },
        "required": ["title", "body"],
    },
    # The note shows in the notes panel: the model need not interrupt itself to say so.
    scheduling=SILENT,
)
async def save_note(ctx: ToolContext, *, title: str, body: str) -> dict[str, Any]:
    """Store a note for the session and show it in the browser."""
    title, body = title.strip(), body.strip()
    if not title or not body:
        raise ToolError("The title and the body must not be blank.")
    if any(char in title for char in "\t\n\r"):
        raise ToolError("The title must be a single line.")
    if _FORBIDDEN_CHARS.search(title) or _FORBIDDEN_CHARS.search(body):
        raise ToolError("The note contains control characters or invalid Unicode.")
    note = await ctx.uninterruptible(_store_and_show(ctx, title, body))
    return {"result": "saved", "note_id": note.id}


async def _store_and_show(ctx: ToolContext, title: str, body: str) -> Note:
    """Store the note, then push it to the browser."""
    note = await store_note(session_id=ctx.session_id, call_id=ctx.call_id, title=title, body=body)
    await ctx.show(note_message(note))
    return note


async def store_note(*, session_id: uuid.UUID, call_id: str, title: str, body: str) -> Note:
    """Write one note to the database."""
    return await database_sync_to_async(services.note_create)(
        session_id=session_id, call_id=call_id, title=title, body=body
    )


def note_message(note: Note) -> str:
    """The ``note`` message that shows a stored note in the browser."""
    return outbound.encode(
        outbound.Note(
            id=note.id, title=note.title, body=note.body, created_at=note.created_at.isoformat()
        )
    )
