"""Run a :class:`StandIn` on its own event loop in a daemon thread, for sync callers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

from standin.records import Behaviour, Connection
from standin.server import DEFAULT_RECORD_LIMIT, UNKNOWN_KIND, StandIn, predicate_holds

T = TypeVar("T")

START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


class ThreadedStandIn:
    """A stand-in served from a background thread; every method is thread-safe.

    ``connections`` returns snapshots. ``wait_for`` evaluates its predicate in the
    calling thread, so the predicate should read ``connections`` (not live records).
    """

    def __init__(
        self,
        *,
        behaviour: Behaviour | None = None,
        tls_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_hosts: Sequence[str] = (),
        record_limit_bytes: int | None = DEFAULT_RECORD_LIMIT,
        keep_closed_records: int | None = 8,
    ) -> None:
        self.standin = StandIn(
            behaviour=behaviour, tls_dir=tls_dir, host=host, port=port, cert_hosts=cert_hosts,
            record_limit_bytes=record_limit_bytes, keep_closed_records=keep_closed_records,
        )  # fmt: skip
        self.standin.listeners.append(self._changed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._condition = threading.Condition()
        self._version = 0

    def __enter__(self) -> ThreadedStandIn:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def behaviour(self) -> Behaviour:
        """The live behaviour (plain attribute writes are safe between turns)."""
        return self.standin.behaviour

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give the SDK's ``HttpOptions``."""
        return self.standin.base_url

    @property
    def ca_path(self) -> Path:
        """PEM of the CA that signed the server certificate."""
        return self.standin.ca_path

    @property
    def connections(self) -> list[Connection]:
        """Snapshots of every connection record, in connect order."""
        if self._loop is None:
            return [record.snapshot() for record in self.standin.connections]
        return self._call(self._snapshot())

    def client_ssl_context(self) -> SSLContext:
        """A client SSL context trusting the stand-in's CA."""
        return self.standin.client_ssl_context()

    def start(self) -> None:
        """Start the loop thread and block until the stand-in listens."""
        if self._loop is not None:
            raise RuntimeError("The stand-in is already started.")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="gemini-live-standin", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        started = False
        try:
            self._call(self.standin.start(), START_TIMEOUT_S)
            started = True
        finally:
            if not started:
                self._stop_loop()

    def stop(self) -> None:
        """Stop the stand-in and its thread; safe to call twice."""
        if self._loop is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._stop_loop()

    def push(self, message: dict[str, Any], *, connection: int = -1) -> None:
        """Send a raw server message on a live connection."""
        self._call(self.standin.push(message, connection=connection))

    def push_unknown(
        self, kind: str = UNKNOWN_KIND, body: dict[str, Any] | None = None, *, connection: int = -1
    ) -> None:
        """Send a message whose only key is ``kind``, one the SDK does not know."""
        self._call(self.standin.push_unknown(kind, body, connection=connection))

    def push_raw(self, text: str, *, connection: int = -1) -> None:
        """Send a text frame exactly as given, malformed JSON included."""
        self._call(self.standin.push_raw(text, connection=connection))

    def interrupt(self, *, connection: int = -1) -> None:
        """Cut the reply playing: ``interrupted``, then turnComplete (with usage) for it."""
        self._call(self.standin.interrupt(connection=connection))

    def disconnect(self, *, connection: int = -1, code: int = 1000, reason: str = "") -> None:
        """Close a live connection."""
        self._call(self.standin.disconnect(connection=connection, code=code, reason=reason))

    def deadline_expire(self, *, connection: int = -1) -> None:
        """Close with 1011 "Deadline expired..." and expire every handle of its conversation."""
        self._call(self.standin.deadline_expire(connection=connection))

    def go_away(self, time_left: float, *, connection: int = -1, close: bool = True) -> None:
        """Send ``goAway``; with ``close``, close the connection with 1000 when time is up."""
        self._call(self.standin.go_away(time_left, connection=connection, close=close))

    def abort(self, *, connection: int = -1) -> None:
        """Drop a live connection without a close frame and wait until it ended."""
        self._call(self.standin.abort(connection=connection))

    def abort_mid_turn(self, *, connection: int = -1, after_messages: int = 1) -> None:
        """Drop a connection once its current or next reply turn has sent ``after_messages``."""
        self._call(self._arm_abort(connection, after_messages))

    def call_tool(
        self,
        name: str,
        args: dict[str, Any],
        *,
        call_id: str | None = None,
        connection: int = -1,
    ) -> str:
        """Make the model call a function now; return the call's id."""
        return self._call(
            self.standin.call_tool(name, args, call_id=call_id, connection=connection)
        )

    def cancel_tool_calls(self, ids: Sequence[str], *, connection: int = -1) -> None:
        """Send ``toolCallCancellation`` for ``ids``."""
        self._call(self.standin.cancel_tool_calls(ids, connection=connection))

    def wait_for_tool_response(self, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Block until a function response to ``call_id`` came, on any connection; return it."""
        return self._call(
            self.standin.wait_for_tool_response(call_id, timeout), timeout + CALL_TIMEOUT_S
        )

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` (run in this thread) is true; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while True:
            with self._condition:
                seen = self._version
            if predicate_holds(predicate):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                summary = "; ".join(c.summary() for c in self.connections) or "no connections"
                raise TimeoutError(f"Condition not met within {timeout} s. Stand-in: {summary}")
            with self._condition:
                self._condition.wait_for(partial(self._moved_on, seen), remaining)

    def _moved_on(self, version: int) -> bool:
        """Whether a record changed since ``version``; the caller holds the condition."""
        return self._version != version

    def _changed(self) -> None:
        """Called in the loop thread on every record change."""
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    async def _arm_abort(self, connection: int, after_messages: int) -> None:
        """``StandIn.abort_mid_turn``, run in the loop thread."""
        self.standin.abort_mid_turn(connection=connection, after_messages=after_messages)

    async def _snapshot(self) -> list[Connection]:
        """Copies of the records, taken in the loop thread."""
        return [record.snapshot() for record in self.standin.connections]

    async def _shutdown(self) -> None:
        """Stop the stand-in and cancel whatever is left on the loop."""
        await self.standin.stop()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _stop_loop(self) -> None:
        """Stop and close the loop and join its thread."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CALL_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``coroutine`` on the loop thread and wait for its result."""
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RuntimeError("The stand-in is not started.")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("Blocking ThreadedStandIn call from its own loop thread.")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)
