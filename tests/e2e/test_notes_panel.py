"""Notes the model saves appear in the share page's notes panel, in Chromium, live."""

from typing import Any

from playwright.sync_api import expect

from sessions_app.models import Note
from standin import ThreadedStandIn
from tests.e2e.conftest import ARTIFACTS, log_in, wait_for_js


def shown_notes(page: Any) -> list[tuple[str, str]]:
    """The notes panel as (title, body) pairs, top to bottom."""
    pairs = page.eval_on_selector_all(
        "[data-testid=notes] [data-testid=note]",
        "notes => notes.map(n => [n.querySelector('.note-title').textContent,"
        " n.querySelector('.note-body').textContent])",
    )
    return [(title, body) for title, body in pairs]


def test_notes_the_model_saves_appear_in_the_panel(
    daphne_server: str, page: Any, user: Any, e2e_standin: ThreadedStandIn
) -> None:
    before = len(e2e_standin.connections)
    log_in(page, daphne_server, "alice", "alice-pass-123")
    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=10000)
    notes = page.get_by_test_id("notes")
    expect(notes.get_by_test_id("note")).to_have_count(0)
    expect(notes.locator("[data-notes-empty]")).to_be_visible()

    # Typed: the stand-in's model answers "note: ..." by calling save_note.
    page.get_by_test_id("text-input").fill("note: Shopping | Milk and eggs")
    page.get_by_test_id("send-text").click()
    expect(notes.get_by_test_id("note")).to_have_count(1, timeout=10000)
    expect(notes.locator("[data-notes-empty]")).to_be_hidden()

    # Scripted: the model calls save_note with markup and a line break in the note.
    call_id = e2e_standin.call_tool(
        "save_note", {"title": "<b>Not bold</b>", "body": "Line one\nLine two"}
    )
    response = e2e_standin.wait_for_tool_response(call_id, timeout=10)
    expect(notes.get_by_test_id("note")).to_have_count(2, timeout=10000)
    assert shown_notes(page) == [
        ("Shopping", "Milk and eggs"),
        ("<b>Not bold</b>", "Line one\nLine two"),
    ]
    assert notes.locator("b").count() == 0  # shown as text, never as markup
    second = notes.get_by_test_id("note").nth(1)
    assert second.get_attribute("data-note-id") == str(response["response"]["note_id"])
    assert second.locator(".note-body").inner_text() == "Line one\nLine two"

    stored = list(Note.objects.order_by("created_at", "id").values_list("call_id", "title", "body"))
    first_call = e2e_standin.connections[before].tool_calls[0]["id"]
    assert stored == [
        (first_call, "Shopping", "Milk and eggs"),
        (call_id, "<b>Not bold</b>", "Line one\nLine two"),
    ]

    # The stats show the token totals per modality as they come.
    wait_for_js(page, "window.sharePage.stats.tokensByModality.prompt.TEXT > 0", timeout=10000)
    tokens_in = page.get_by_test_id("stats").locator("[data-stat=tokens-in]").inner_text()
    assert "text" in tokens_in
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "share-page-notes.png"), full_page=True)

    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ended", timeout=10000)
    assert Note.objects.filter(session__user=user).count() == 2
