"""The model connection offers permessage-deflate only when GEMINI_WS_COMPRESSION is on.

Deflating base64 media was the largest single cost of the worker in the benchmark
(docs/benchmarks.md), so it is off by default. Full ASGI stack, real SDK, the stand-in's
record of the handshake headers.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from sessions_app.live import client
from standin import StandIn
from tests.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Clients are cached per endpoint; each case builds its own from the settings."""
    client.build_client.cache_clear()
    yield
    client.build_client.cache_clear()


@pytest.mark.parametrize("compression", [False, True], ids=["default-off", "on"])
async def test_compression_follows_the_setting(
    compression: bool, standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_WS_COMPRESSION = compression
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="text")
    await browser.send(type="text", text="still relayed")
    await browser.expect("turn_complete")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    headers = {name.lower(): value for name, value in standin.connections[0].headers.items()}
    offered = headers.get("sec-websocket-extensions", "")
    assert ("permessage-deflate" in offered) is compression, headers
    assert standin.connections[0].texts == ["still relayed"]
