"""The real backing services the settings select: PostgreSQL and the Redis channel layer."""

import asyncio
import os
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.db import connection

pytestmark = pytest.mark.django_db
from tests.conftest import require  # noqa: E402


@pytest.mark.postgres
def test_suite_runs_on_postgresql_when_configured() -> None:
    url = os.environ.get("DATABASE_URL", "")
    require(url.startswith(("postgres://", "postgresql://")), "DATABASE_URL is not PostgreSQL")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.redis
@pytest.mark.asyncio
async def test_redis_channel_layer_round_trip(settings: Any) -> None:
    require(bool(os.environ.get("REDIS_URL")), "REDIS_URL is not set")
    from channels_redis.core import RedisChannelLayer

    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    group = f"test-{uuid.uuid4().hex}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "session.end", "reason": "admin"})
    assert await layer.receive(channel) == {"type": "session.end", "reason": "admin"}
    await layer.group_discard(group, channel)
    await layer.flush()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_redis_layer_survives_idle_waits_longer_than_its_blocking_timeout() -> None:
    """An idle consumer blocks on Redis past the layer's 5 s wait without a read timeout."""
    require(bool(os.environ.get("REDIS_URL")), "REDIS_URL is not set")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    with pytest.raises(TimeoutError):
        # asyncio's timeout, not redis.exceptions.TimeoutError from the socket.
        await asyncio.wait_for(layer.receive(channel), timeout=layer.brpop_timeout + 2)
    await layer.flush()
