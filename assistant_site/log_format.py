"""Structured logs: one JSON object a line, chosen with DJANGO_LOG_FORMAT=json.

Each line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then the
fields callers pass with ``extra=`` (``session_id``, ``user_id``, ``event``, ...), and
``exception`` with the traceback when there is one. Request headers and bodies are never
written: Django attaches the whole request as ``extra={"request": ...}``, and of it only
the method and the path (without query string) are kept. UUIDs, decimals, dates,
durations and enums become strings or numbers; any other object is written as its type
name, never as its contents.
"""

import datetime as dt
import decimal
import enum
import json
import logging
import math
import uuid
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_BASE_FIELDS = ("time", "level", "logger", "message")


def _plain(value: Any) -> Any:
    """``value`` if it is plain JSON data (recursively), else its type name in angle brackets.

    Identifiers, numbers and times that JSON has no type for (UUID, Decimal, dates,
    durations, enums) are written as strings, durations as seconds; so are infinities and
    NaN, which JSON cannot hold.
    """
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    return f"<{type(value).__name__}>"


def _request_fields(request: Any) -> dict[str, Any]:
    """The method and path of a request passed as ``extra``; never its headers or body."""
    fields: dict[str, Any] = {}
    method = getattr(request, "method", None)
    path = getattr(request, "path", None)
    if isinstance(method, str):
        fields["method"] = method
    if isinstance(path, str):
        fields["path"] = path
    return fields


class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise ``record``: base fields, then its ``extra`` fields, then any traceback."""
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRIBUTES or key in _BASE_FIELDS:
                continue
            if key == "request":
                line.update(_request_fields(value))
            else:
                line[key] = _plain(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, allow_nan=False)
