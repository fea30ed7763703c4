"""The site in Simplified Chinese, in Chromium: a browser asking for zh-CN gets the log-in
page and the share page's controls in Chinese, the strings the page's modules make too;
the header's switcher changes the language to English and back, on the log-in page and
the share page; the speech language follows the page's language and reaches the model.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from standin import ThreadedStandIn
from tests.e2e.conftest import wait_for_js

ZH_HEADERS = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def zh_page(chromium: Any) -> Iterator[Any]:
    """A fresh context of a browser whose language is Chinese (China)."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 720}, locale="zh-CN", extra_http_headers=ZH_HEADERS
    )
    page = context.new_page()
    yield page
    context.close()


def switch_language(page: Any, code: str) -> None:
    """Pick ``code`` in the header's switcher and submit it with the keyboard."""
    page.get_by_label({"en": "语言", "zh-hans": "Language"}[code], exact=True).select_option(code)
    page.get_by_test_id("language-submit").focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", code)


def test_the_log_in_page_is_in_chinese_and_the_switcher_changes_it(
    daphne_server: str, zh_page: Any, user: Any
) -> None:
    page = zh_page
    page.goto(f"{daphne_server}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("h1")).to_have_text("登录")
    expect(page.get_by_test_id("login")).to_have_text("登录")
    expect(page.get_by_text("用户名")).to_be_visible()
    expect(page).to_have_title("登录 · 屏幕共享助手")

    switch_language(page, "en")
    assert page.url == f"{daphne_server}/accounts/login/"  # back where it was
    expect(page.locator("h1")).to_have_text("Log in")
    expect(page.get_by_label("Language", exact=True)).to_have_value("en")
    switch_language(page, "zh-hans")
    expect(page.get_by_test_id("login")).to_have_text("登录")


def log_in_chinese(page: Any, base_url: str) -> None:
    """Log in as alice through the Chinese log-in form."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("用户名").fill("alice")
    page.get_by_label("密码").fill("alice-pass-123")
    page.get_by_test_id("login").click()
    page.wait_for_url(f"{base_url}/")


def test_the_share_page_is_in_chinese_down_to_its_scripts(
    daphne_server: str, zh_page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    page = zh_page
    log_in_chinese(page, daphne_server)
    expect(page.get_by_test_id("start")).to_have_text("开始")
    expect(page.get_by_test_id("stop")).to_have_text("停止")
    expect(page.get_by_test_id("status")).to_have_text("空闲")
    expect(page.get_by_test_id("send-text")).to_have_text("发送")
    expect(page.get_by_test_id("text-input")).to_have_attribute("placeholder", "输入消息")
    expect(page.locator("#stats dt").first).to_have_text("已发送画面")
    speech = page.get_by_test_id("speech-language")
    expect(speech).to_have_value("cmn-CN")  # the page's language, as a Live API code
    expect(speech.locator("option:checked")).to_have_text("中文普通话（中国）")  # noqa: RUF001 (Chinese punctuation)
    assert page.evaluate("gettext('Live')") == "进行中"  # the JavaScript catalog is Chinese

    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", "live", timeout=15000)
    expect(status).to_have_text("进行中")  # made by share.js
    expect(speech).to_be_disabled()  # chosen before Start
    page.get_by_test_id("mic-toggle").click()
    expect(page.get_by_test_id("mic-toggle")).to_have_text("取消麦克风静音")
    page.get_by_test_id("text-input").fill("你好")
    page.get_by_test_id("send-text").click()
    typed = page.locator("#transcript .line.user[data-source=typed] .who")
    expect(typed).to_have_text("你（输入）")  # noqa: RUF001 (Chinese punctuation)
    wait_for_js(page, "window.sharePage.transcript.list.children.length >= 2")
    setup = e2e_standin.connections[0].setup
    assert setup["generationConfig"]["speechConfig"]["languageCode"] == "cmn-CN"
    page.get_by_test_id("stop").click()
    expect(status).to_have_attribute("data-state", "ended", timeout=15000)


def test_the_switcher_turns_the_share_page_english_and_its_speech_language_with_it(
    daphne_server: str, zh_page: Any, user: Any
) -> None:
    page = zh_page
    log_in_chinese(page, daphne_server)
    switch_language(page, "en")
    assert page.url == f"{daphne_server}/"
    expect(page.get_by_test_id("start")).to_have_text("Start")
    expect(page.get_by_test_id("status")).to_have_text("Idle")
    expect(page.get_by_test_id("speech-language")).to_have_value("en-US")
    assert page.evaluate("gettext('Live')") == "Live"
    switch_language(page, "zh-hans")
    expect(page.get_by_test_id("start")).to_have_text("开始")
    expect(page.get_by_test_id("speech-language")).to_have_value("cmn-CN")
