"""``/metrics``: this worker's Prometheus metrics, for a scraper holding ``METRICS_TOKEN``.

Served in front of Django, as a small ASGI app: Prometheus scrapes each worker by its own
address, which is in no ``DJANGO_ALLOWED_HOSTS``, and needs none of Django's middleware.
The bearer token is what protects it: without ``METRICS_TOKEN`` set the path answers 404
(and nothing is counted: sessions_app.metrics); without the right ``Authorization:
Bearer <token>``, 401. nginx never proxies the path (deploy/nginx.conf).
"""

import hmac
from typing import Any

from django.conf import settings

from sessions_app import metrics

PATH = "/metrics"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def authorised(headers: list[tuple[bytes, bytes]], token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()
    given = next((value for name, value in headers if name.lower() == b"authorization"), b"")
    return hmac.compare_digest(given.strip(), expected)


class MetricsEndpoint:
    """``GET /metrics`` answered here; every other HTTP request goes on to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        token = settings.METRICS_TOKEN
        if not token:
            await _answer(send, 404, b"Not found.\n")
        elif not authorised(scope.get("headers", []), token):
            await _answer(send, 401, b"A bearer token is required.\n", bearer=True)
        elif scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"GET only.\n")
        else:
            await _answer(send, 200, metrics.exposition(), content_type=CONTENT_TYPE)


async def _answer(
    send: Any,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain",
    bearer: bool = False,
) -> None:
    """One complete response."""
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
    if bearer:
        headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
