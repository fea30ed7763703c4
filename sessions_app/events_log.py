"""One log line per session event, readable as text and as structured fields.

``log_event("session_end", session_id=..., user_id=..., reason=...)`` writes
``session_end session=<id> user=<id> reason=...`` and passes the same values as ``extra``
fields (``event``, ``session_id``, ``user_id``, ...), which the JSON log format emits as
keys. Callers pass identifiers and short descriptions only: never media, text the user
typed or said, or credentials.
"""

import logging
import uuid
from typing import Any

logger = logging.getLogger("sessions_app.events")


def log_event(
    event: str,
    *,
    session_id: uuid.UUID | str | None = None,
    user_id: Any = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one session event with its identifiers and fields."""
    extra = {"event": event, "session_id": str(session_id) if session_id else None}
    extra["user_id"] = user_id
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.log(
        level,
        "%s session=%s user=%s%s",
        event,
        session_id,
        user_id,
        f" {details}" if details else "",
        extra={**extra, **{f"ev_{key}": value for key, value in fields.items()}},
    )
