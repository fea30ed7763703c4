"""End-to-end fixtures: a real Daphne process on the test database, a stand-in, Chromium."""

import contextlib
import functools
import math
import os
import struct
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from standin import Behaviour, ThreadedStandIn
from tests.conftest import TEST_API_KEY, require
from tests.leaks import SCANNER
from tests.processes import ROOT, database_url, free_port, wait_for_http

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def e2e_standin(standin_tls_dir: str) -> Iterator[ThreadedStandIn]:
    """A stand-in in a thread, for one end-to-end test."""
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=standin_tls_dir) as server:
        yield server


@pytest.fixture
def daphne_server(
    transactional_db: Any, e2e_standin: ThreadedStandIn, tmp_path: Path
) -> Iterator[str]:
    """The site served by Daphne, as `make run` serves it, with the stand-in upstream."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url(),
        "GEMINI_API_KEY": TEST_API_KEY,
        "GEMINI_API_BASE_URL": e2e_standin.base_url,
        "GEMINI_CA_BUNDLE": str(e2e_standin.ca_path),
    }
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "assistant_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/accounts/login/", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        SCANNER.scan("server-log", (tmp_path / "daphne.log").read_bytes())


TONE_HZ = 440.0
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--auto-accept-this-tab-capture",
]


def write_tone_wav(path: Path, freq: float = TONE_HZ, seconds: float = 4.0) -> Path:
    """A 48 kHz mono 16-bit WAV of a pure tone at -6 dBFS, in 300 ms bursts.

    Chromium loops it as the microphone. The gaps keep the browser's noise suppression
    (on, as in production) from treating a steady tone as noise and fading it out.
    """
    rate = 48000

    def sample(i: int) -> int:
        t = i / rate % 0.5  # 300 ms of tone, 200 ms of silence, with 10 ms ramps
        gain = 0.0 if t >= 0.3 else min(1.0, t / 0.01, (0.3 - t) / 0.01)
        return int(16384 * gain * math.sin(2 * math.pi * freq * i / rate))

    frames = struct.pack(
        f"<{int(rate * seconds)}h", *(sample(i) for i in range(int(rate * seconds)))
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


# An init script for chromium_tab_capture: Chromium's fake capture UI always picks the
# (animated) fake display, so that browser runs without it and shares the current tab,
# which holds still.
SHARE_THIS_TAB = """
const original = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getDisplayMedia = (options) =>
  original({...options, preferCurrentTab: true});
"""


def launch_chromium(playwright_driver: Any, wav: Path, *, fake_ui: bool = True) -> Any:
    """Headless Chromium whose microphone plays ``wav`` on a loop.

    With ``fake_ui`` Chromium's fake capture UI answers the permission prompts, and picks
    its fake (animated) 1280x720 display as the screen to share.
    """
    ui = ["--use-fake-ui-for-media-stream"] if fake_ui else []
    return playwright_driver.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*BASE_ARGS, *ui, f"--use-file-for-fake-audio-capture={wav}"],
    )


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Any]:
    """Playwright, with Django's async-safety guard lifted for this package only.

    Sync Playwright keeps an event loop running in this thread, so Django's guard against
    sync ORM calls in async code would refuse the tests' own ORM calls. The end-to-end
    package runs last (see tests/conftest.py), and the guard is restored after it.
    """
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(scope="package")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone's input: a pure tone."""
    return write_tone_wav(tmp_path_factory.mktemp("audio") / "tone.wav")


@pytest.fixture(scope="package")
def chromium(playwright_driver: Any, tone_wav: Path) -> Iterator[Any]:
    """Headless Chromium whose screen is Chromium's fake (animated) 1280x720 display."""
    browser = launch_chromium(playwright_driver, tone_wav)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def chromium_tab_capture(playwright_driver: Any, tone_wav: Path) -> Iterator[Any]:
    """Headless Chromium that shares the page's own tab: a screen that holds still."""
    browser = launch_chromium(playwright_driver, tone_wav, fake_ui=False)
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page, 1280x720."""
    context = chromium.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()

    def watch(socket: Any) -> None:
        """Scan every WebSocket frame the page receives for the API key."""
        socket.on("framereceived", lambda payload: SCANNER.scan("ws", payload))

    page.on("websocket", watch)
    yield page
    SCANNER.scan("http", page.content())
    context.close()


def wait_for_js(page: Any, expression: str, timeout: float = 30000) -> Any:
    """Poll a JavaScript expression until it is truthy; return its value.

    Playwright's ``page.wait_for_function`` evaluates its predicate with ``eval`` in the
    page, which the site's Content-Security-Policy (script-src 'self', no 'unsafe-eval')
    refuses; ``page.evaluate`` goes through the DevTools protocol and is not affected.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout} ms")
        time.sleep(0.05)


@contextlib.contextmanager
def module_page(chromium: Any, static_site: str, path: str) -> Iterator[Any]:
    """A test page of tests/e2e/pages/ at ``path`` on ``static_site``, in a fresh context,
    once it set ``body[data-ready=true]``; on leaving, the page had no uncaught errors."""
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{static_site}{path}")
        page.wait_for_selector("body[data-ready=true]")
        yield page
    finally:
        context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def interrupt_a_long_reply(page: Any, standin: ThreadedStandIn) -> None:
    """Type a turn whose long reply streams faster than real time and piles up in the
    page's player, then have the stand-in interrupt the model."""
    standin.behaviour.reply_audio_s = 8.0
    standin.behaviour.chunk_interval_s = 0.02
    page.get_by_test_id("text-input").fill("Tell me everything")
    page.get_by_test_id("send-text").click()
    wait_for_js(page, "window.sharePage.player.queuedSamples > 24000", timeout=15000)
    standin.interrupt()


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the login form."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_test_id("login").click()
    page.wait_for_url(f"{base_url}/")


class _QuietStaticHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@pytest.fixture(scope="module")
def static_site() -> Iterator[str]:
    """The repository root over HTTP on 127.0.0.1 (a secure context, as worklets require),
    for the pages in tests/e2e/pages/."""
    handler = functools.partial(_QuietStaticHandler, directory=str(ROOT))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
