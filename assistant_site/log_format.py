"""Structured logs: one JSON object a line (python-json-logger), chosen with DJANGO_LOG_FORMAT=json.

Each line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then the
fields callers pass with ``extra=`` (``session_id``, ``user_id``, ``event``, ...), and
``exception`` with the traceback when there is one. Request headers and bodies are never
written: Django attaches the whole request as ``extra={"request": ...}``, and of it only
the method and the path (without query string) are kept. UUIDs, decimals, dates,
durations and enums become strings or numbers; any other object (bytes too) is written as
its type name, never as its contents.
"""

import datetime as dt
import decimal
import enum
import functools
import json
import logging
import math
import uuid
from typing import Any

from pythonjsonlogger import core
from pythonjsonlogger import json as jsonlogger

# What python-json-logger never copies from a record, plus the names of the base fields,
# so that an ``extra`` field cannot overwrite one of them.
_RESERVED = [*core.RESERVED_ATTRS, "taskName", "time", "level", "logger", "exception", "stack"]
_RENAMED = {
    "asctime": "time",
    "levelname": "level",
    "name": "logger",
    "exc_info": "exception",
    "stack_info": "stack",
}


def _json_default(value: Any) -> Any:
    """JSON for what ``json`` has no type for; anything unknown only as its type name."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return f"<{type(value).__name__}>"


def _finite(value: Any) -> Any:
    """``value`` with infinities and NaN as strings, which JSON cannot hold as numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


class JsonFormatter(jsonlogger.JsonFormatter):
    """python-json-logger's formatter with this site's field names (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Set up the fields, names and encoding; arguments as for python-json-logger."""
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", _RENAMED)
        kwargs.setdefault("reserved_attrs", _RESERVED)
        kwargs.setdefault("json_default", _json_default)
        # Dict keys JSON cannot hold are dropped rather than failing the whole line.
        kwargs.setdefault("json_serializer", functools.partial(json.dumps, skipkeys=True))
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's time in UTC, ISO 8601 with milliseconds."""
        created = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        return created.isoformat(timespec="milliseconds")

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        """Keep only the method and path of a request passed as ``extra``; no NaN numbers."""
        request = log_record.pop("request", None)
        for field in ("method", "path"):
            value = getattr(request, field, None)
            if isinstance(value, str):
                log_record[field] = value
        return {key: _finite(value) for key, value in log_record.items()}
