"""The page shows the session's tokens and estimated cost as it runs, in headless Chromium.

The stand-in bills like the service (the whole context every turn: audio, frames, text);
the figure the page shows must equal the price table's rates times the tokens the
session's row stores.
"""

from decimal import Decimal
from typing import Any

from playwright.sync_api import expect

from sessions_app.models import LiveSession
from standin import ThreadedStandIn
from tests.e2e.conftest import log_in, wait_for_js
from tests.records import priced

COST = "document.querySelector('[data-testid=cost]')"


def ask(page: Any, question: str, answers: int) -> None:
    """Type a question and wait until the page has shown ``answers`` usage reports."""
    page.get_by_test_id("text-input").fill(question)
    page.get_by_test_id("send-text").click()
    wait_for_js(page, f"window.sharePage.stats.usageReports >= {answers}", timeout=15000)


def test_the_cost_shown_is_the_price_table_times_the_stored_tokens(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    log_in(page, daphne_server, "alice", "alice-pass-123")
    expect(page.get_by_test_id("cost")).to_have_text("\u2013")  # an en dash: nothing spent yet
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    ask(page, "What is on my screen?", 1)
    first = Decimal(page.evaluate(f"{COST}.dataset.usd"))
    ask(page, "And what changed?", 2)
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ended")
    # What the page shows once the session is over: its last usage report.
    shown_usd = page.evaluate(f"{COST}.dataset.usd")
    shown_text = page.get_by_test_id("cost").inner_text()
    shown_tokens = int(page.locator("[data-stat=tokens]").inner_text())

    session = LiveSession.objects.get()
    assert session.total_tokens == shown_tokens > 0
    assert session.prompt_tokens_by_modality.get("IMAGE", 0) > 0  # the screen was billed
    assert session.prompt_tokens_by_modality.get("AUDIO", 0) > 0  # and the microphone
    assert Decimal(shown_usd) == priced(session) == session.cost_usd
    assert shown_text == f"${session.cost_usd:.4f}"
    assert 0 < first < Decimal(shown_usd)  # the second turn re-billed the whole context
