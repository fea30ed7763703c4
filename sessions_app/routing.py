"""WebSocket routes."""

from django.urls import path

from sessions_app.consumers import ShareConsumer

websocket_urlpatterns = [
    path("ws/share/", ShareConsumer.as_asgi()),
]
