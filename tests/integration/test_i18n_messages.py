"""The share socket speaks the user's language, and the start's speech language reaches the model.

The socket has no LocaleMiddleware: the consumer activates the language of the handshake
(the switcher's ``django_language`` cookie, else Accept-Language) for the whole connection,
so its errors and status sentences arrive in Simplified Chinese for a Chinese user. The
start's ``language`` is checked against GEMINI_SPEECH_LANGUAGES and goes to the Live API as
``speech_config.language_code``.
"""

from typing import Any

import pytest

from sessions_app.protocol import CloseCode
from standin import StandIn
from tests.conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)

ZH_COOKIE = "django_language=zh-hans"


def speech_config(standin: StandIn) -> dict[str, Any]:
    """The speechConfig of the first setup the stand-in received."""
    setup = standin.connections[0].setup
    config: dict[str, Any] = setup["generationConfig"]["speechConfig"]
    return config


async def test_a_socket_error_comes_in_chinese_for_the_chinese_cookie(cookie: str) -> None:
    browser = Browser(f"{cookie}; {ZH_COOKIE}")
    await browser.connect()
    await browser.send(type="stop")
    error = await browser.expect("error")
    assert error["code"] == "not_started"
    assert error["message"] == "当前没有可停止的会话。"
    await browser.close()


async def test_accept_language_chooses_chinese_and_the_cookie_wins_over_it(cookie: str) -> None:
    by_header = Browser(cookie)
    by_header.ws.scope["headers"].append((b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.5"))
    await by_header.connect()
    await by_header.send(type="text", text="hello")
    assert (await by_header.expect("error"))["message"] == "请先开始会话。"
    await by_header.close()

    english = Browser(f"{cookie}; django_language=en")
    english.ws.scope["headers"].append((b"accept-language", b"zh-CN"))
    await english.connect()
    await english.send(type="text", text="hello")
    assert (await english.expect("error"))["message"] == "Start a live session first."
    await english.close()


async def test_a_model_refusal_is_told_in_chinese(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_MODEL = "gemini-9"  # unknown to the service: 1008 at setup
    browser = Browser(f"{cookie}; {ZH_COOKIE}")
    await browser.connect()
    await browser.send(type="start", mode="audio", language="cmn-CN")
    error = await browser.expect("error")
    assert error["code"] == "model_unavailable"
    assert error["message"].startswith("助手所用的模型不可用。")
    assert "GEMINI_MODEL" in error["message"]
    assert await browser.expect_close() == CloseCode.UPSTREAM_FAILED


async def test_an_unoffered_speech_language_is_refused_in_the_users_language(
    cookie: str, settings: Any
) -> None:
    settings.GEMINI_SPEECH_LANGUAGES = ["en-US", "cmn-CN"]
    browser = Browser(f"{cookie}; {ZH_COOKIE}")
    await browser.connect()
    for language in ("xx-YY", "", "EN-us"):
        await browser.send(type="start", mode="audio", language=language)
        error = await browser.expect("error")
        assert error["code"] == "invalid_field"
        assert error["message"] == '字段 "language" 必须是以下之一：en-US, cmn-CN。'  # noqa: RUF001 (Chinese punctuation)
    await browser.send(type="start", mode="audio", language=7)
    assert (await browser.expect("error"))["code"] == "invalid_field"
    assert not any(m["type"] == "status" for m in browser.messages)  # nothing started
    await browser.close()


async def test_the_chosen_speech_language_reaches_the_model_setup(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio", voice="Puck", language="cmn-CN")
    await browser.expect("status", state="live", timeout=10)
    config = speech_config(standin)
    assert config["languageCode"] == "cmn-CN"
    assert config["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Puck"
    assert standin.connections[0].setup is not None
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    await browser.close()


async def test_a_start_without_language_asks_for_the_default(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_DEFAULT_SPEECH_LANGUAGE = "cmn-CN"
    browser = Browser(cookie)
    await browser.connect()
    await browser.start()
    assert speech_config(standin)["languageCode"] == "cmn-CN"
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    await browser.close()


async def test_the_history_pages_follow_accept_language(user: Any) -> None:
    from channels.db import database_sync_to_async
    from django.test import Client

    from sessions_app.models import LiveSession

    def pages() -> tuple[str, str]:
        session = LiveSession.objects.create(
            user=user, model="m", response_modality="TEXT", status="ended", end_reason="client_stop"
        )
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
        client.force_login(user)
        listing = client.get("/sessions/").content.decode()
        detail = client.get(f"/sessions/{session.pk}/").content.decode()
        return listing, detail

    listing, detail = await database_sync_to_async(pages)()
    assert "<h1>你的会话</h1>" in listing
    assert "<td>已结束</td>" in listing  # the choices' labels
    assert "<td>文字</td>" in listing
    assert "已结束 (用户停止)" in detail
    assert 'lang="zh-hans"' in detail
