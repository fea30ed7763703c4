"""The share page's plain sentences for errors, close codes and end reasons, in Chromium.

First every code's sentence as static/js/messages.js gives it (tests/e2e/pages/messages.html
renders them all), compared with the sentences below; then real failures through the site:
a retired model, a second tab over the per-user limit, a server that drops the connection,
a login that expired. Each shows its sentence as the headline and keeps the raw code and the
server's message in the details line.
"""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sessions_app.live.models import RETIRED
from standin import ThreadedStandIn
from tests.conftest import TEST_API_KEY
from tests.e2e.conftest import ARTIFACTS, log_in, module_page
from tests.processes import DaphneWorker, kill_quietly, worker_env

PAGE = "/tests/e2e/pages/messages.html"
RETRY = "retry"
LOG_IN = "login"

UNREADABLE = (
    "The page sent something the server could not read; it was skipped."
    " Reload the page if this keeps happening."
)
MODEL_LOST = "The connection to the model was lost and could not be restored. Start again."
MODEL_UNREACHABLE = (
    "The assistant's model could not be reached. Try again in a minute; if it keeps"
    " failing, tell an administrator."
)
MODEL_UNAVAILABLE = (
    "The assistant's model is not available. Tell an administrator to set GEMINI_MODEL"
    " to a current model."
)
SERVER_ERROR = (
    "The server hit an error and ended the session. Start again; if it happens again,"
    " tell an administrator."
)
ANOTHER_TAB = (
    "A session is already running in another tab or on another device. Stop it there,"
    " then start here."
)
SERVER_FULL = "The server is full right now. Try again in a minute."
TOO_FAST = (
    "The page sent too much, too fast, so the session ended. Start again with fewer frames"
    " per second."
)
UNREADABLE_CLOSE = (
    "The page kept sending messages the server could not read, so the session ended."
    " Reload the page and start again."
)
STORAGE_LOST = (
    "The server could not store the transcript for too long, so the session ended. What"
    " was said so far is kept. Try again in a minute."
)
BUDGET = (
    "Your daily allowance for the assistant is used up. It resets at midnight; to go on"
    " today, ask an administrator to raise it."
)
CONNECTION_LOST = "The connection to the server dropped. Check your network, then try again."
LOGGED_OUT = "You are no longer logged in. Log in again, then start a new session."

ERRORS = {
    "bad_json": (UNREADABLE, ""),
    "bad_message": (UNREADABLE, ""),
    "unknown_type": (UNREADABLE, ""),
    "invalid_field": (UNREADABLE, ""),
    "too_large": (
        "That was too large to send and was skipped. Type a shorter message; if screen"
        " frames keep being skipped, tell an administrator.",
        "",
    ),
    "empty_frame": (UNREADABLE, ""),
    "unknown_kind": (UNREADABLE, ""),
    "bad_image": (
        "A screen frame could not be read and was skipped. Reload the page if this keeps"
        " happening.",
        "",
    ),
    "bad_audio": (
        "A piece of microphone audio could not be read and was skipped. Reload the page if"
        " this keeps happening.",
        "",
    ),
    "not_started": ("No session is running. Press Start first.", ""),
    "already_started": (
        "A session is already running on this page. Stop it before starting another.",
        "",
    ),
    "upstream_unavailable": (MODEL_UNREACHABLE, RETRY),
    "upstream_error": (MODEL_LOST, RETRY),
    "model_unavailable": (MODEL_UNAVAILABLE, ""),
    "model_refused": (
        "The model service refused this session's settings. Tell an administrator to check"
        " the GEMINI_MODEL setting.",
        "",
    ),
    "model_refused+api_key": (
        "The model service did not accept the server's API key. Tell an administrator to"
        " check the GEMINI_API_KEY setting.",
        "",
    ),
    "model_error": ("The model service had an internal error. Try again in a minute.", RETRY),
    "internal_error": (SERVER_ERROR, RETRY),
    "too_many_sessions": (ANOTHER_TAB, ""),
    "server_busy": (SERVER_FULL, RETRY),
    "rate_limited": (
        "The page is sending too much, too fast; some of it was dropped. Choose fewer frames"
        " per second.",
        "",
    ),
    "storage_unavailable": (
        "The server cannot reach its database right now, so the session did not start."
        " Try again in a minute.",
        RETRY,
    ),
    "wrong_mic_mode": (
        "The microphone mode does not match this session. Stop, then start again to switch"
        " between push-to-talk and automatic.",
        "",
    ),
    "budget_warning": (
        "You have used 90% of your daily allowance for the assistant. The session ends when"
        " it is used up.",
        "",
    ),
    "budget_exhausted": (BUDGET, ""),
    "no_such_code": (
        "Something went wrong. Start again; if it happens again, tell an administrator.",
        RETRY,
    ),
}
CLOSES = {
    "1000": ("The session ended.", ""),
    "1006": (CONNECTION_LOST, RETRY),
    "1011": (SERVER_ERROR, RETRY),
    "4400": (UNREADABLE_CLOSE, ""),
    "4401": (LOGGED_OUT, LOG_IN),
    "4429": (TOO_FAST, RETRY),
    "4502": ("The connection to the model failed. Try again in a minute.", RETRY),
    "4503": (STORAGE_LOST, RETRY),
    "4999": ("The connection to the server closed unexpectedly. Try again.", RETRY),
}
ENDS = {
    "client_stop": ("You stopped the session.", ""),
    "client_disconnect": ("The page lost its connection, so the session ended. Start again.", ""),
    "upstream_unavailable": (MODEL_UNREACHABLE, RETRY),
    "upstream_closed": ("The model service ended the session. Start again to go on.", ""),
    "upstream_error": (MODEL_LOST, RETRY),
    "protocol_error": (UNREADABLE_CLOSE, ""),
    "duration_limit": ("The session reached its maximum length. Start a new one to go on.", ""),
    "idle_timeout": (
        "The session ended because nothing was shared, said or typed for a while. Start"
        " again when you are ready.",
        "",
    ),
    "user_limit": (ANOTHER_TAB, ""),
    "worker_limit": (SERVER_FULL, RETRY),
    "admin_ended": ("An administrator ended this session.", ""),
    "server_shutdown": ("The server is restarting. Start again in a moment.", RETRY),
    "worker_lost": ("The server stopped unexpectedly, so the session ended. Start again.", RETRY),
    "rate_limited": (TOO_FAST, RETRY),
    "internal_error": (SERVER_ERROR, RETRY),
    "storage_unavailable": (STORAGE_LOST, RETRY),
    "budget_exhausted": (BUDGET, ""),
    "no_such_reason": ("The session ended. Start again to go on.", ""),
}
EXPECTED = {"error": ERRORS, "close": CLOSES, "end": ENDS}


def test_every_code_renders_its_sentence(chromium: Any, static_site: str) -> None:
    with module_page(chromium, static_site, PAGE) as page:
        rows = page.evaluate("window.rows")
        shown = {
            kind: {row["code"]: (row["text"], row["action"]) for row in rows if row["kind"] == kind}
            for kind in EXPECTED
        }
        assert shown == EXPECTED
        details = {(row["kind"], row["code"]): row["details"] for row in rows}
        assert (
            details["error", "too_many_sessions"]
            == "too_many_sessions · server says too_many_sessions"
        )
        assert details["error", "model_refused+api_key"] == (
            "model_refused · refused · model service closed 1008: API key not valid."
        )
        assert details["close", "1006"] == "connection closed 1006"
        assert details["end", "idle_timeout"] == "ended: idle_timeout · server says idle_timeout"
        cell = page.locator("tr[data-kind=error][data-code=budget_exhausted] td").nth(2)
        expect(cell).to_have_text(BUDGET)


@pytest.fixture
def site(transactional_db: Any, e2e_standin: ThreadedStandIn, tmp_path: Path) -> Iterator[Any]:
    """Start Daphne with extra settings: ``site(**env)`` yields the running worker."""
    workers: list[DaphneWorker] = []

    @contextlib.contextmanager
    def start(**env: str) -> Iterator[DaphneWorker]:
        """One worker, with the stand-in upstream and ``env`` on top."""
        worker = DaphneWorker(
            f"site-{len(workers)}",
            worker_env(
                DJANGO_DEBUG="1",
                DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
                GEMINI_API_KEY=TEST_API_KEY,
                GEMINI_API_BASE_URL=e2e_standin.base_url,
                GEMINI_CA_BUNDLE=str(e2e_standin.ca_path),
                **env,
            ),
            tmp_path / f"daphne-{len(workers)}.log",
        )
        workers.append(worker)
        yield worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


def errors_of(page: Any) -> list[dict[str, Any]]:
    """The `error` messages the page receives, as they come."""
    errors: list[dict[str, Any]] = []

    def received(payload: str | bytes) -> None:
        if isinstance(payload, str) and json.loads(payload).get("type") == "error":
            errors.append(json.loads(payload))

    page.on("websocket", lambda socket: socket.on("framereceived", received))
    return errors


def start_session(page: Any, mode: str = "text", state: str = "live") -> Any:
    """Choose ``mode``, press Start and wait for ``state``; the status line."""
    page.select_option("#mode", mode)
    page.get_by_test_id("start").click()
    status = page.get_by_test_id("status")
    expect(status).to_have_attribute("data-state", state, timeout=15000)
    return status


def details_text(page: Any) -> Any:
    """Open the details line; its text."""
    details = page.get_by_test_id("error-details")
    expect(details).to_be_visible()
    assert details.get_attribute("open") is None  # collapsed: the sentence is the headline
    details.locator("summary").click()
    return details.locator("[data-error-detail]")


def test_a_retired_model_tells_to_ask_an_admin_about_gemini_model(
    site: Any, page: Any, user: Any
) -> None:
    with site(GEMINI_MODEL=sorted(RETIRED)[0]) as worker:
        errors = errors_of(page)
        log_in(page, worker.url, "alice", "alice-pass-123")
        status = start_session(page, mode="audio", state="error")
        expect(status).to_have_text(f"Error: {MODEL_UNAVAILABLE}")
        shown = details_text(page)
        [error] = errors
        assert (error["code"], error["upstream_code"]) == ("model_unavailable", 1008)
        expect(shown).to_contain_text(f"model_unavailable · {error['message']}")
        expect(shown).to_contain_text("model service closed 1008: models/")
        expect(page.get_by_test_id("retry")).to_be_hidden()  # trying again will not help


def test_a_second_tab_over_the_user_limit_is_told_to_stop_the_other(
    site: Any, page: Any, user: Any
) -> None:
    with site(SHARE_MAX_SESSIONS_PER_USER="1") as worker:
        log_in(page, worker.url, "alice", "alice-pass-123")
        start_session(page)
        second = page.context.new_page()
        errors = errors_of(second)
        second.goto(f"{worker.url}/")
        status = start_session(second, state="error")
        expect(status).to_have_text(f"Error: {ANOTHER_TAB}")
        [error] = errors
        assert error["code"] == "too_many_sessions"
        expect(details_text(second)).to_have_text(f"too_many_sessions · {error['message']}")
        expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live")
        second.close()


def test_a_dropped_connection_says_so_and_retry_starts_again(
    site: Any, page: Any, user: Any
) -> None:
    with site() as worker:
        log_in(page, worker.url, "alice", "alice-pass-123")
        start_session(page)
        assert worker.process is not None
        kill_quietly(worker.process)  # no close frame: the browser sees 1006
        status = page.get_by_test_id("status")
        expect(status).to_have_text(f"Error: {CONNECTION_LOST}", timeout=15000)
        expect(details_text(page)).to_have_text("connection closed 1006")
        retry = page.get_by_test_id("retry")
        expect(retry).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "share-page-connection-lost.png"))

        worker.start()  # the server is back, on the same port
        retry.click()
        expect(status).to_have_attribute("data-state", "live", timeout=15000)
        expect(retry).to_be_hidden()
        expect(page.get_by_test_id("error-details")).to_be_hidden()


def test_an_expired_login_links_to_the_login_page(site: Any, page: Any, user: Any) -> None:
    with site() as worker:
        log_in(page, worker.url, "alice", "alice-pass-123")
        page.context.clear_cookies()  # as if the session expired while the page was open
        status = start_session(page, state="error")
        expect(status).to_have_text(f"Error: {LOGGED_OUT}")
        expect(details_text(page)).to_have_text("connection closed 4401")
        link = page.get_by_test_id("log-in-again")
        expect(link).to_be_visible()
        link.click()
        page.wait_for_url(f"{worker.url}/accounts/login/?next=/")
