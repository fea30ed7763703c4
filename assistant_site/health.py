"""``/healthz``: whether this worker can reach its database and its channel layer.

Load balancers and container health checks poll it; it needs no login and reveals no
configuration, only which dependency failed.
"""

import asyncio
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0


def _database_ok() -> bool:
    """Run a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        logger.warning("Health check: the database is unreachable", exc_info=True)
        return False
    finally:
        connection.close()


async def _channel_layer_ok() -> bool:
    """Send a message to a fresh channel and read it back."""
    layer = get_channel_layer()
    if layer is None:
        return False
    probe = {"type": "health.probe", "id": uuid.uuid4().hex}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            channel = await layer.new_channel("health.")  # type: ignore[call-arg]
            await layer.send(channel, probe)
            return bool(await layer.receive(channel) == probe)
    except (TimeoutError, OSError, RedisError):
        logger.warning("Health check: the channel layer is unreachable", exc_info=True)
        return False


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 with each check "ok", or 503 naming what failed."""
    database, layer = await asyncio.gather(
        sync_to_async(_database_ok, thread_sensitive=False)(), _channel_layer_ok()
    )
    checks = {"database": "ok" if database else "fail", "channel_layer": "ok" if layer else "fail"}
    healthy = database and layer
    return JsonResponse(
        {"status": "ok" if healthy else "fail", **checks}, status=200 if healthy else 503
    )
