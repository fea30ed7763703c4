"""Media frames do not queue behind the database: no per-message connection clean-up.

Channels' AsyncConsumer.dispatch runs close_old_connections in the one thread-sensitive
sync thread before every handler; for media that queued every audio chunk behind every
session's database writes (docs/benchmarks.md, profiling). ShareConsumer skips it for
``websocket.receive`` only. The clean-up is counted where Channels calls it.
"""

from typing import Any

import pytest
from channels import consumer as channels_consumer

from sessions_app.protocol import Kind
from tests.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)


async def test_received_frames_skip_the_clean_up_and_connect_keeps_it(
    cookie: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = channels_consumer.aclose_old_connections

    async def counted() -> Any:
        calls.append("close_old_connections")
        return await original()

    monkeypatch.setattr(channels_consumer, "aclose_old_connections", counted)
    browser = Browser(cookie)
    await browser.connect()
    assert calls == ["close_old_connections"]  # websocket.connect still cleans up
    for _ in range(5):
        await browser.send_media(Kind.AUDIO, b"\x00\x01" * 1600)
        assert (await browser.expect("error"))["code"] == "not_started"
    await browser.send(type="stop")
    await browser.expect("error")
    assert calls == ["close_old_connections"]
