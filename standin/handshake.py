"""The stand-in's WebSocket handshake: the only path it serves, and credentials kept out of logs.

Like Google's service, it answers 404 for any path but ``BidiGenerateContent``. Request
headers are recorded lower-cased with the API key replaced, and websockets' debug log of
the handshake (the ``standin.server.websockets`` logger) never shows it either.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

logger = logging.getLogger(__name__)

PATH_RE = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.[\w.-]+\.GenerativeService"
    r"\.BidiGenerateContent(?:Constrained)?$"
)
SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})
REDACTED = "<redacted>"


def redact_headers(headers: Headers) -> dict[str, str]:
    """Request headers with lower-case names and credentials replaced."""
    result: dict[str, str] = {}
    for name, value in headers.raw_items():
        key = name.lower()
        shown = REDACTED if key in SECRET_HEADERS else value
        result[key] = f"{result[key]}, {shown}" if key in result else shown
    return result


def check_path(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse handshakes for any path but BidiGenerateContent, like Google does."""
    if PATH_RE.match(urlsplit(request.path).path):
        return None
    logger.warning("Refused WebSocket handshake for unknown path %s", request.path)
    return connection.respond(HTTPStatus.NOT_FOUND, "Not found.\n")


class _RedactSecrets(logging.Filter):
    """Hide credential header values in websockets' debug log of the handshake."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``< name: value`` records whose name is a secret header."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], REDACTED)
        return True


wire_logger = logging.getLogger("standin.server.websockets")
wire_logger.addFilter(_RedactSecrets())
