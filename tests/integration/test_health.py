"""/healthz checks the database and the channel layer."""

import os
from typing import Any

import pytest
from django.test import AsyncClient

from tests.conftest import require

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_is_ok_without_login() -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}
    assert "no-cache" in response["Cache-Control"]


async def test_healthz_on_redis(settings: Any) -> None:
    url = os.environ.get("REDIS_URL", "")
    require(bool(url), "REDIS_URL is not set")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [url]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = await AsyncClient().get("/healthz")
        assert response.json()["channel_layer"] == "ok"
    finally:
        channel_layers.backends.clear()


async def test_healthz_reports_an_unreachable_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:9", "socket_timeout": 1}]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = await AsyncClient().get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json() == {"status": "fail", "database": "ok", "channel_layer": "fail"}


async def test_healthz_refuses_other_methods() -> None:
    assert (await AsyncClient().post("/healthz")).status_code == 405
