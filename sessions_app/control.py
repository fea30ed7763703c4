"""Controlling live sessions across worker processes through the channel layer.

Every live session's consumer joins the group :func:`session_group`. Whoever wants a
session ended (an admin action, served by any worker) sends to that group; the consumer
holding the session, on whatever worker, ends it. With the Redis layer this reaches
every worker; with the in-memory layer (development) only the one process.
"""

import uuid

from channels.layers import get_channel_layer

END_MESSAGE_TYPE = "session.end"


def session_group(session_id: uuid.UUID | str) -> str:
    """The channel-layer group of one live session."""
    return f"live-session.{session_id}"


async def request_end(session_id: uuid.UUID | str, *, reason: str, message: str) -> None:
    """Ask the worker holding ``session_id`` to end it with ``reason``."""
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(
        session_group(session_id),
        {
            "type": END_MESSAGE_TYPE,
            "session_id": str(session_id),
            "reason": reason,
            "message": message,
        },
    )
