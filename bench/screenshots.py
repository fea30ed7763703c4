"""`make screenshots`: docs/screenshots/ from the real pages, with the stand-in as the model.

Serves the site with Daphne on a fresh SQLite database, has Chromium (its fake screen and
microphone) log in, start a session, type a question and wait for the answer, and saves
the share page live in English (share-live-en.png) and with the browser's language set
to Simplified Chinese (share-live-zh.png), then the admin's page of the English session
(admin-session.png). Chinese text needs a CJK font (Debian: fonts-wqy-zenhei).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import run
from standin import Behaviour, ThreadedStandIn

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "demo", "demo-pass-123"
API_KEY = "screenshot-key-not-secret"
QUESTION = {"en": "What is on my screen?", "zh": "我的屏幕上有什么"}
VIEWPORT = {"width": 1280, "height": 1000}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def site_env(workdir: Path, standin: ThreadedStandIn) -> dict[str, str]:
    """The environment of the site: a SQLite file in ``workdir``, the stand-in upstream."""
    return {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "screenshots-only"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": "",
        "GEMINI_OFFLINE_DEMO": "0",
        "GEMINI_API_KEY": API_KEY,
        "GEMINI_API_BASE_URL": standin.base_url,
        "GEMINI_CA_BUNDLE": str(standin.ca_path),
    }


def prepare_database(
    env: dict[str, str], user: str = USER, password: str = PASSWORD, *, admin: bool = True
) -> None:
    """Migrate the fresh database and create the user (by default the demo user, an admin,
    for the admin page)."""
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    make = "create_superuser" if admin else "create_user"
    create = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.{make}({user!r}, password={password!r})"
    )
    subprocess.run([*manage, "shell", "-c", create], cwd=ROOT, env=env, check=True)


@contextmanager
def started_daphne(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Daphne started on a free port (not yet answering): its base URL and process."""
    port = run.free_port()
    command = [sys.executable, "-m", "assistant_site.serve", "-b", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "assistant_site.asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def daphne(env: dict[str, str], log: Path) -> Iterator[str]:
    """Daphne serving the site; its base URL once the login page answers."""
    with started_daphne(env, log) as (url, process):
        wait_for(f"{url}/accounts/login/", process)
        yield url


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers; fail if the server exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the site exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - the local site
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def log_in(page: Any, url: str) -> None:
    """Log in through the login form as the demo user."""
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("login").click()
    page.wait_for_url(f"{url}/")


def poll(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Wait until a JavaScript expression is truthy in the page (the site's CSP forbids
    the eval that Playwright's wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout} s")
        time.sleep(0.1)


def share_live(browser: Any, url: str, language: str) -> None:
    """Start a session in ``language``, ask a question, save the page once it answered."""
    locale = {"en": "en-US", "zh": "zh-CN"}[language]
    context = browser.new_context(viewport=VIEWPORT, locale=locale)
    page = context.new_page()
    try:
        log_in(page, url)
        page.select_option("#mode", "text")
        page.get_by_test_id("start").click()
        poll(page, "document.querySelector('[data-testid=status]').dataset.state === 'live'")
        page.get_by_test_id("mic-toggle").click()  # the fake microphone only beeps
        page.get_by_test_id("text-input").fill(QUESTION[language])
        page.get_by_test_id("send-text").click()
        poll(page, "document.querySelectorAll('#transcript [data-role=model]').length > 0")
        time.sleep(1.5)  # let the preview and the stats settle for the picture
        page.screenshot(path=str(OUT / f"share-live-{language}.png"), full_page=True)
        page.get_by_test_id("stop").click()
        poll(page, "document.querySelector('[data-testid=status]').dataset.state !== 'live'")
    finally:
        context.close()


def admin_session(browser: Any, url: str) -> None:
    """Save the admin's page of the first session (the English one)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        log_in(page, url)
        page.goto(f"{url}/admin/sessions_app/livesession/?o=1")
        page.locator("#result_list tbody tr").first.locator("a").first.click()
        page.wait_for_selector("#entries-group")
        page.screenshot(path=str(OUT / "admin-session.png"), full_page=True)
    finally:
        context.close()


def main() -> None:
    """Serve the site on the stand-in and save the three screenshots."""
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ThreadedStandIn(behaviour=Behaviour(), tls_dir=Path(tmp) / "tls") as standin,
    ):
        env = site_env(Path(tmp), standin)
        prepare_database(env)
        with daphne(env, Path(tmp) / "daphne.log") as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            for language in ("en", "zh"):
                share_live(browser, url, language)
            admin_session(browser, url)
            browser.close()
    for name in ("share-live-en.png", "share-live-zh.png", "admin-session.png"):
        print(f"wrote {(OUT / name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
