"""What the relay tells an observer about itself: for metrics, without importing them.

The relay (:mod:`sessions_app.live.relay`) reports to a :class:`RelayObserver` the time
each message spent in it, the connections the service refused, the messages it could not
read and the service's closes. The owner of the relay (the app) supplies one that counts;
:class:`NullObserver` counts nothing.

A browser message is timed from the moment its owner received it: the owner sets
:data:`received_at` (``time.perf_counter()``) before handing the message to the relay,
which takes it with the message. A message queued with no such time is timed from its
queuing.
"""

import contextvars
from typing import Protocol

# When the browser message now being handled arrived (time.perf_counter()), if known.
received_at: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "received_at", default=None
)


class RelayObserver(Protocol):
    """Receives the relay's measurements; every method must be cheap and never raise."""

    def relayed_up(self, seconds: float) -> None:
        """A browser message reached the service ``seconds`` after it arrived."""

    def relayed_down(self, seconds: float) -> None:
        """A service message was handed to the browser ``seconds`` after it arrived."""

    def refused(self, code: int | None) -> None:
        """The service refused a connection (its close code, if it gave one)."""

    def unknown_message(self) -> None:
        """A service message the SDK could not read was skipped."""

    def closed(self, code: int | None) -> None:
        """The service closed a connection (its close code; None without one)."""


class NullObserver:
    """An observer that counts nothing."""

    def relayed_up(self, seconds: float) -> None:
        """Nothing."""

    def relayed_down(self, seconds: float) -> None:
        """Nothing."""

    def refused(self, code: int | None) -> None:
        """Nothing."""

    def unknown_message(self) -> None:
        """Nothing."""

    def closed(self, code: int | None) -> None:
        """Nothing."""
