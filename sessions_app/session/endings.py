"""How a session ends: one table from the end reason to everything that follows from it.

Every path that ends a session names only its :class:`EndReason`; the stored status, the
socket's close code (or none: the socket stays open for another start), whether the
browser is told, and the sentence it is told, all come from :data:`ENDINGS`.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_noop

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode

Status = LiveSession.Status
EndReason = LiveSession.EndReason

# Sentences for people, marked here and translated when sent (sessions_app.outbound.encode).
ADMIN_END_MESSAGE = gettext_noop("An administrator ended this session.")
SHUTDOWN_MESSAGE = gettext_noop("The server is restarting. Start again in a moment.")
MALFORMED_MESSAGE = gettext_noop(
    "Closed: the browser kept sending messages the server cannot read."
)
INTERNAL_ERROR_MESSAGE = gettext_noop("The server hit an error and ended the session. Start again.")
BUDGET_MESSAGE = gettext_noop(
    "Your daily allowance of tokens is used up, so the session ended. What was said is kept."
    " It resets at midnight; an administrator can raise it."
)
STORAGE_MESSAGE = gettext_noop(
    "The server could not store the transcript for too long, so the session ended rather than"
    " lose it. What was said so far is kept. Start again in a minute."
)


@dataclass(frozen=True)
class Ending:
    """What follows from one end reason."""

    status: str
    close_code: int | None = None  # None: the socket stays open
    message: str = ""  # for the user, in ``status ended``; a caller may say more
    notify: bool = True  # send the browser ``status ended``


ENDINGS: dict[str, Ending] = {
    EndReason.CLIENT_STOP: Ending(Status.ENDED),
    EndReason.CLIENT_DISCONNECT: Ending(Status.ENDED, notify=False),  # nobody to tell
    EndReason.UPSTREAM_CLOSED: Ending(Status.ENDED),
    EndReason.UPSTREAM_ERROR: Ending(Status.FAILED, CloseCode.UPSTREAM_FAILED),
    EndReason.UPSTREAM_UNAVAILABLE: Ending(Status.FAILED, CloseCode.UPSTREAM_FAILED),
    EndReason.DURATION_LIMIT: Ending(Status.ENDED),
    EndReason.IDLE_TIMEOUT: Ending(Status.ENDED),
    EndReason.ADMIN_ENDED: Ending(Status.ENDED, message=ADMIN_END_MESSAGE),
    EndReason.SERVER_SHUTDOWN: Ending(Status.ENDED, message=SHUTDOWN_MESSAGE),
    EndReason.RATE_LIMITED: Ending(Status.ENDED, CloseCode.RATE_LIMITED),
    EndReason.PROTOCOL_ERROR: Ending(
        Status.ENDED, CloseCode.PROTOCOL_ERROR, message=MALFORMED_MESSAGE
    ),
    EndReason.INTERNAL_ERROR: Ending(
        Status.FAILED, CloseCode.INTERNAL_ERROR, message=INTERNAL_ERROR_MESSAGE
    ),
    EndReason.STORAGE_UNAVAILABLE: Ending(
        Status.FAILED, CloseCode.STORAGE_UNAVAILABLE, message=STORAGE_MESSAGE
    ),
    # The session stays stored as ended; a new start is refused until midnight.
    EndReason.BUDGET_EXHAUSTED: Ending(Status.ENDED, message=BUDGET_MESSAGE),
    # Refused at start (stored at once, never live) and swept after a crash.
    EndReason.USER_LIMIT: Ending(Status.FAILED, notify=False),
    EndReason.WORKER_LIMIT: Ending(Status.FAILED, notify=False),
    EndReason.WORKER_LOST: Ending(Status.INTERRUPTED, notify=False),
}


def ending(reason: str) -> Ending:
    """What follows from ``reason``; an unknown reason is an internal error."""
    return ENDINGS.get(reason, ENDINGS[EndReason.INTERNAL_ERROR])
