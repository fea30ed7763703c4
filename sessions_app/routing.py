"""WebSocket routes."""

from typing import Any

from django.urls import path

from sessions_app.consumers import ShareConsumer

# Channels routes URL patterns whose callback is an ASGI app; django-stubs types path() for views.
websocket_urlpatterns: list[Any] = [
    path("ws/share/", ShareConsumer.as_asgi()),  # type: ignore[arg-type]
]
