"""Controlling live sessions across worker processes through the channel layer.

Every live session's consumer joins the group :func:`session_group`. Whoever wants a
session ended (an admin action, served by any worker) sends to that group; the consumer
holding the session, on whatever worker, ends it. With the Redis layer this reaches
every worker; with the in-memory layer (development) only the one process.

The layer is a service that can go away (Redis restarted or unreachable) while sessions
go on: :class:`LayerLink` is a consumer's side of it, whose receive waits out an outage
and whose group membership is restored once the layer answers again (a Redis restarted
empty has forgotten every group). Reconnecting is left to the layer's connection pool
(redis-py drops a connection whose call failed and opens a new one for the next call);
what the layer does not do is retry a failed call or re-join groups: channels_redis
builds its pools without redis-py retries, and a retry inside redis-py would not bring
the groups back either. That is what this adds.
"""

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

END_MESSAGE_TYPE = "session.end"

# What a channel layer raises when its server cannot be reached: channels_redis lets
# redis-py's errors through (its pools do not retry), socket errors included.
LAYER_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

# Waits between attempts to reach the layer again: doubled from the first to the cap,
# each shortened by up to a quarter at random so that a worker's consumers spread out.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0
RETRY_JITTER = 0.25


# The first call after a Redis restart can fail on a pooled connection the server closed
# while it sat idle (redis-py's check of a connection it hands out does not see that, and
# its own retry options, tried in the layer's host settings, did not cover channels-redis'
# group_send); redis-py drops that connection after the error, so a second attempt gets a
# new one.
SEND_ATTEMPTS = 2

# A group nobody joins: discarding a channel from it checks that the layer answers.
PROBE_GROUP = "live-session.probe"

logger = logging.getLogger(__name__)


class LayerUnavailable(Exception):
    """The channel layer could not be reached; nothing was sent."""


def session_group(session_id: uuid.UUID | str) -> str:
    """The channel-layer group of one live session."""
    return f"live-session.{session_id}"


async def request_end(session_id: uuid.UUID | str, *, reason: str, message: str) -> None:
    """Ask the worker holding ``session_id`` to end it with ``reason``.

    Raises :class:`LayerUnavailable` when the layer cannot be reached: the request was
    not delivered, and the session goes on.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    event = {
        "type": END_MESSAGE_TYPE,
        "session_id": str(session_id),
        "reason": reason,
        "message": message,
    }
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            await layer.group_send(session_group(session_id), event)
            return
        except LAYER_ERRORS as exc:
            if attempt == SEND_ATTEMPTS:
                logger.warning("Could not ask session %s to end: channel layer unreachable"
                               " (%s)", session_id, exc)  # fmt: skip
                raise LayerUnavailable(str(exc)) from exc


class LayerLink:
    """One consumer's channel on the layer: a receive that survives outages, one group.

    :meth:`receive` never raises a layer error: it logs the outage once (WARNING), tries
    again with a growing wait, and, once the layer answers, re-joins the group (INFO) and
    receives again. A :meth:`join` that fails is retried by the same recovery. Whatever
    cancels the consumer's receive (the consumer ending) cancels the recovery with it;
    :meth:`close` cancels one that nobody awaits.
    """

    def __init__(
        self,
        layer: BaseChannelLayer,
        channel: str,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.layer = layer
        self.channel = channel
        self.group: str | None = None
        self.failures = 0  # failed attempts in the current outage; 0 while reachable
        self.outages = 0
        self._sleep = sleep
        self._recovery: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, Any]:
        """The next message on the channel, however long the layer is away."""
        while True:
            if self.failures:
                await self._recovered()
            try:
                message: dict[str, Any] = await self.layer.receive(self.channel)
            except LAYER_ERRORS as exc:
                self._failed("receive", exc)
                continue
            return message

    async def join(self, group: str) -> None:
        """Join ``group``; if the layer is away, the recovery joins it once it is back."""
        self.group = group
        try:
            await self.layer.group_add(group, self.channel)
        except LAYER_ERRORS as exc:
            self._failed(f"joining {group}", exc)
            self._start_recovery()

    async def leave(self) -> None:
        """Leave the group (if the layer is away, there is nothing to leave after a restart)."""
        group, self.group = self.group, None
        if group is None:
            return
        try:
            await self.layer.group_discard(group, self.channel)
        except LAYER_ERRORS as exc:
            logger.info("Channel layer unreachable while leaving %s (%s)", group, exc)

    def close(self) -> None:
        """Stop a recovery still running (the consumer has ended)."""
        if self._recovery is not None:
            self._recovery.cancel()

    def _failed(self, what: str, exc: BaseException) -> None:
        """Count a failed call; the first of an outage is logged."""
        if not self.failures:
            self.outages += 1
            logger.warning(
                "Channel layer unreachable (%s: %s); retrying until it is back",
                what, exc or type(exc).__name__,
            )  # fmt: skip
        self.failures += 1

    def _start_recovery(self) -> asyncio.Task[None]:
        """The running recovery, started if there is none."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())
        return self._recovery

    async def _recovered(self) -> None:
        """Wait until the layer answers again and the group is joined again."""
        await self._start_recovery()

    async def _recover(self) -> None:
        """Retry with a growing wait until the layer answers; re-join the group then."""
        delay = RETRY_FIRST_S
        while True:
            await self._sleep(delay * (1 - RETRY_JITTER * random.random()))  # noqa: S311 - spread
            try:
                await self._rejoin()
            except LAYER_ERRORS:
                self.failures += 1
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            logger.info(
                "Channel layer reachable again after %d failed attempts; group %s re-joined",
                self.failures, self.group or "(none)",
            )  # fmt: skip
            self.failures = 0
            return

    async def _rejoin(self) -> None:
        """Join the group again (a restarted Redis forgot it); with none, probe the layer."""
        if self.group is not None:
            await self.layer.group_add(self.group, self.channel)
        else:
            await self.layer.group_discard(PROBE_GROUP, self.channel)
