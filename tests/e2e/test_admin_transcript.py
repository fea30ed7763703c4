"""The admin's session page in Chromium: each transcript line and each note shows once
(the inline rows have no title repeating str(obj))."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import expect

from sessions_app.models import LiveSession, Note, TranscriptEntry
from tests.e2e.conftest import log_in

LINES = [
    ("user", "typed", "Which window is the build log in?"),
    ("model", "text-reply", "The terminal on the left shows the build log."),
    ("user", "speech", "Scroll to the first red line please"),
    ("model", "speech", "The first failure is the missing migration for notes."),
]
NOTES = [("Migration to add", "Run makemigrations for the notes table.")]


def recorded_session(user: Any) -> LiveSession:
    """An ended session of ``user`` holding LINES and NOTES."""
    started = timezone.now() - timedelta(minutes=5)
    session = LiveSession.objects.create(
        user=user, started_at=started, ended_at=started + timedelta(minutes=2),
        model="gemini-test", response_modality="AUDIO", voice="Puck",
        status=LiveSession.Status.ENDED, end_reason=LiveSession.EndReason.CLIENT_STOP,
    )  # fmt: skip
    for sequence, (role, source, text) in enumerate(LINES, start=1):
        TranscriptEntry.objects.create(
            session=session, sequence=sequence, role=role, source=source, text=text
        )
    for index, (title, body) in enumerate(NOTES):
        Note.objects.create(session=session, call_id=f"call-{index}", title=title, body=body)
    return session


def test_the_admin_session_page_shows_each_line_once(
    daphne_server: str, page: Any, django_user_model: Any
) -> None:
    root = django_user_model.objects.create_superuser("root", password="root-pass-123")
    session = recorded_session(root)
    log_in(page, daphne_server, "root", "root-pass-123")
    page.goto(f"{daphne_server}/admin/sessions_app/livesession/{session.pk}/change/")

    transcript = page.locator("#entries-group")
    expect(transcript.locator("tbody tr:has(td.field-text)")).to_have_count(len(LINES))
    expect(transcript.locator(".inline-deletelink")).to_have_count(0)  # rows stay records
    body = page.locator("body").inner_text()
    for _, _, text in LINES:
        assert body.count(text) == 1, (text, body.count(text))
    assert body.count(f"#1 user: {LINES[0][2]}") == 0  # no str(obj) row title
    rows = transcript.locator("tbody tr:has(td.field-text)")
    assert [rows.nth(i).locator("td.field-text").inner_text() for i in range(len(LINES))] == [
        text for _, _, text in LINES
    ]
    for title, body_text in NOTES:
        assert body.count(title) == 1, title
        assert body.count(body_text) == 1, body_text
