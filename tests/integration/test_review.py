"""Reviewing sessions: admin search, filters and columns, the three export formats read
back, the user's history and downloads, usage per user, and retention."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from sessions_app import exports, views
from sessions_app.admin import LiveSessionAdmin
from sessions_app.models import LiveSession, Note, TranscriptEntry
from tests.records import stored_lines_and_notes

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:sessions_app_livesession_changelist"
T0 = datetime(2026, 11, 3, 9, 30, 5, 123456, tzinfo=UTC)

# Lines that try to break each format: line breaks, Markdown and CSV syntax, formulas,
# quotes, commas, non-Latin text, a leading apostrophe.
TRICKY_LINES = [
    ("user", "speech", "Where is the export button?"),
    ("model", "speech", "Top right.\nThen pick **Markdown**, or - CSV."),
    ("user", "typed", '=HYPERLINK("http://example.invalid","x"), "quoted", a,b'),
    ("model", "text-reply", "Grüße, 你好 — 'fine'\n\n  indented after a blank line"),
    ("user", "typed", "'already quoted"),
    ("model", "speech", "- a dash first\n> not a quote\n### not a heading"),
]
TRICKY_NOTES = [
    ("Export steps", "1. Open the admin\n2. Select sessions\n\n> pick a format"),
    ("=SUM(A1)", "+cell, @cell, -cell"),
]


def make_session(
    user: Any,
    lines: list[tuple[str, str, str]],
    notes: list[tuple[str, str]] = (),  # type: ignore[assignment]
    *,
    started_at: datetime = T0,
    length: timedelta = timedelta(minutes=3),
    **fields: Any,
) -> LiveSession:
    """A finished session with numbered lines one second apart, then its notes."""
    defaults = {
        "model": "gemini-test", "response_modality": "AUDIO", "voice": "Puck",
        "status": LiveSession.Status.ENDED, "end_reason": LiveSession.EndReason.CLIENT_STOP,
        "prompt_tokens": 30, "response_tokens": 12, "total_tokens": 42, "resumptions": 1,
        "prompt_tokens_by_modality": {"AUDIO": 25, "TEXT": 5},
        "response_tokens_by_modality": {"AUDIO": 12},
    }  # fmt: skip
    defaults.update(fields)
    session = LiveSession.objects.create(
        user=user, started_at=started_at, ended_at=started_at + length, **defaults
    )
    for sequence, (role, source, text) in enumerate(lines, start=1):
        TranscriptEntry.objects.create(
            session=session, sequence=sequence, role=role, source=source, text=text,
            created_at=started_at + timedelta(seconds=sequence, microseconds=sequence),
        )  # fmt: skip
    for index, (title, body) in enumerate(notes):
        Note.objects.create(
            session=session, call_id=f"call-{index}", title=title, body=body,
            created_at=started_at + timedelta(seconds=30 + index),
        )  # fmt: skip
    return session


def to_seconds(moment: datetime) -> datetime:
    """``moment`` in UTC, to the second (Markdown's precision)."""
    return moment.astimezone(UTC).replace(microsecond=0)


# Readers of the export formats, written from docs/exports.md.

MD_SESSION = re.compile(r"^# Session (?P<time>.+ UTC)$")
MD_ID = re.compile(r"^- Session: `(?P<id>[0-9a-f-]+)`$")
MD_LINE = re.compile(
    r"^- \*\*\[(?P<time>[^\]]+ UTC)\] (?P<speaker>User|Assistant)(?P<typed> \(typed\))?:\*\* "
    r"(?P<text>.*)$"
)
MD_NOTE = re.compile(r"^### (?P<title>.*)$")
MD_SAVED = re.compile(r"^_Saved (?P<time>.+ UTC)_$")


def md_time(text: str) -> datetime:
    return datetime.strptime(text, exports.MARKDOWN_TIME).replace(tzinfo=UTC)


def read_markdown(text: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Session id -> its lines (speaker, typed, text, time) and notes (title, body, time)."""
    sessions: dict[str, dict[str, list[dict[str, Any]]]] = {}
    current: dict[str, list[dict[str, Any]]] = {}
    section = ""
    for raw in text.split("\n"):
        if MD_SESSION.match(raw):
            section = "header"
        elif found := MD_ID.match(raw):
            current = sessions[found["id"]] = {"lines": [], "notes": []}
        elif raw in ("## Transcript", "## Notes"):
            section = raw[3:].lower()
        elif section == "transcript" and (found := MD_LINE.match(raw)):
            current["lines"].append(
                {"role": "user" if found["speaker"] == "User" else "model",
                 "typed": bool(found["typed"]), "text": found["text"],
                 "time": md_time(found["time"])}
            )  # fmt: skip
        elif section == "transcript" and raw.startswith("  "):
            current["lines"][-1]["text"] += "\n" + raw[2:]
        elif section == "notes" and (found := MD_NOTE.match(raw)):
            current["notes"].append({"title": found["title"], "body": None})
        elif section == "notes" and (found := MD_SAVED.match(raw)):
            current["notes"][-1]["time"] = md_time(found["time"])
        elif section == "notes" and raw.startswith(">"):
            note = current["notes"][-1]
            part = raw[2:] if raw.startswith("> ") else ""
            note["body"] = part if note["body"] is None else note["body"] + "\n" + part
    return sessions


def read_csv(text: str) -> list[dict[str, str]]:
    """The rows, with the formula guard (one leading apostrophe) taken off again."""
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for column in ("title", "text"):
            if row[column].startswith("'"):
                row[column] = row[column][1:]
    return rows


def admin_export(admin_client: Any, action: str, sessions: list[LiveSession]) -> Any:
    """Run an export action on the changelist for ``sessions``."""
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(s.pk) for s in sessions]},
    )
    assert response.status_code == 200, response.content[:500]
    return response


@pytest.fixture
def two_sessions(user: Any, other_user: Any) -> list[LiveSession]:
    """A tricky session of alice's with notes, and a plain one of bob's an hour later."""
    first = make_session(user, TRICKY_LINES, TRICKY_NOTES, cost_usd=Decimal("0.012345"))
    second = make_session(
        other_user, [("user", "speech", "hello"), ("model", "speech", "hi")],
        started_at=T0 + timedelta(hours=1), response_modality="TEXT", voice="",
    )  # fmt: skip
    return [first, second]


def test_json_export_round_trips_every_line_and_note(
    admin_client: Any, two_sessions: list[LiveSession]
) -> None:
    response = admin_export(admin_client, "export_json", two_sessions)
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="sessions-')
    document = json.loads(response.content)
    assert document["schema"] == exports.SCHEMA
    assert [s["id"] for s in document["sessions"]] == [str(s.pk) for s in two_sessions]
    for session, exported in zip(two_sessions, document["sessions"], strict=True):
        lines, notes = stored_lines_and_notes(session)
        assert [
            (
                e["sequence"],
                e["role"],
                e["source"],
                e["text"],
                datetime.fromisoformat(e["created_at"]),
            )
            for e in exported["transcript"]
        ] == lines
        assert [
            (n["title"], n["body"], datetime.fromisoformat(n["created_at"]))
            for n in exported["notes"]
        ] == notes
        assert exported["user"] == session.user.username
        assert exported["duration_s"] == 180.0
        assert exported["tokens"] == {
            "prompt": 30, "response": 12, "total": 42,
            "prompt_by_modality": {"AUDIO": 25, "TEXT": 5}, "response_by_modality": {"AUDIO": 12},
        }  # fmt: skip
        assert exported["cost_usd"] == (None if session.cost_usd is None else 0.012345)
        assert (exported["status"], exported["end_reason"], exported["resumptions"]) == (
            "ended", "client_stop", 1,
        )  # fmt: skip


def test_markdown_export_round_trips_every_line_and_note(
    admin_client: Any, two_sessions: list[LiveSession]
) -> None:
    response = admin_export(admin_client, "export_markdown", two_sessions)
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    parsed = read_markdown(text)
    assert list(parsed) == [str(s.pk) for s in two_sessions]
    for session in two_sessions:
        lines, notes = stored_lines_and_notes(session)
        assert [
            (line["role"], line["typed"], line["text"], line["time"])
            for line in parsed[str(session.pk)]["lines"]
        ] == [
            (role, source == "typed", body, to_seconds(at)) for _, role, source, body, at in lines
        ]
        assert [
            (note["title"], note["body"], note["time"]) for note in parsed[str(session.pk)]["notes"]
        ] == [(title, body, to_seconds(at)) for title, body, at in notes]
    # Readable: speakers and times in words, the session's facts in a header.
    assert "- **[2026-11-03 09:30:06 UTC] User:** Where is the export button?" in text
    assert "- User: alice" in text
    assert "- Duration: 0:03:00" in text
    assert "- Tokens: 42 (30 in, 12 out)" in text
    assert "- Estimated cost: $0.0123" in text  # alice's session
    assert "- Estimated cost: -" in text  # bob's: no price


def list_cells(page: str, session: LiveSession) -> list[tuple[str, str]]:
    """The (field, text) cells of a session's row in the admin changelist."""
    row = re.search(rf"<tr>(?:(?!</tr>).)*{session.pk}(?:(?!</tr>).)*</tr>", page, re.S)
    assert row is not None
    return re.findall(r'<td class="field-(\w+)[^"]*">([^<]*)</td>', row.group(0))


def test_admin_list_shows_each_sessions_estimated_cost(admin_client: Any, user: Any) -> None:
    cheap = make_session(user, [], cost_usd=Decimal("0.004321"))
    dear = make_session(user, [], started_at=T0 - timedelta(hours=1), cost_usd=Decimal("0.5"))
    unpriced = make_session(user, [], started_at=T0 + timedelta(hours=1))
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Cost (USD)" in page
    assert ("cost_display", "0.0043") in list_cells(page, cheap)
    assert ("cost_display", "0.5000") in list_cells(page, dear)
    assert ("cost_display", "-") in list_cells(page, unpriced)  # the model had no price
    column = 1 + LiveSessionAdmin.list_display.index("cost_display")  # after the checkboxes
    for order, expected in ((f"{column}", [cheap, dear]), (f"-{column}", [dear, cheap])):
        shown = admin_client.get(reverse(CHANGELIST), {"o": order}).context["cl"].result_list
        assert [s for s in shown if s.cost_usd is not None] == expected  # sorted by cost


def test_csv_export_round_trips_every_line_and_note(
    admin_client: Any, two_sessions: list[LiveSession]
) -> None:
    response = admin_export(admin_client, "export_csv", two_sessions)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    raw_rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    # Formulas are neutralised for spreadsheets.
    assert not [row for row in raw_rows if row["text"][:1] in "=+-@" and row["text"]]
    rows = read_csv(response.content.decode())
    assert list(rows[0]) == list(exports.CSV_COLUMNS)
    for session in two_sessions:
        lines, notes = stored_lines_and_notes(session)
        own = [row for row in rows if row["session_id"] == str(session.pk)]
        assert {row["user"] for row in own} == {session.user.username}
        assert [
            (int(r["sequence"]), r["role"], r["source"], r["text"],
             datetime.fromisoformat(r["created_at"]))
            for r in own if r["kind"] == "line"
        ] == lines  # fmt: skip
        assert [
            (r["title"], r["text"], datetime.fromisoformat(r["created_at"]))
            for r in own if r["kind"] == "note"
        ] == notes  # fmt: skip
        (summary,) = [row for row in own if row["kind"] == "session"]
        assert own[0] is summary  # the session's own row comes first
        assert int(summary["total_tokens"]) == session.total_tokens
        assert summary["cost_usd"] == (
            "" if session.cost_usd is None else f"{session.cost_usd:.6f}"
        )
    assert len(rows) == len(TRICKY_LINES) + len(TRICKY_NOTES) + 2 + len(two_sessions)


def test_admin_search_filters_columns_and_notes_inline(
    admin_client: Any, user: Any, other_user: Any
) -> None:
    target = make_session(
        user,
        [("user", "speech", "the quokka dashboard"), ("model", "speech", "ok")],
        cost_usd=Decimal("0.004321"),
    )
    noted = make_session(user, [("user", "typed", "x")], [("Platypus plan", "feed it")])
    make_session(
        other_user, [("user", "typed", "unrelated")], model="gemini-other",
        status=LiveSession.Status.FAILED, end_reason=LiveSession.EndReason.UPSTREAM_ERROR,
    )  # fmt: skip
    url = reverse(CHANGELIST)
    found = admin_client.get(url, {"q": "quokka"})
    assert list(found.context["cl"].result_list) == [target]
    assert list(admin_client.get(url, {"q": "platypus"}).context["cl"].result_list) == [noted]

    for params, count in (
        ({"status__exact": "failed"}, 1), ({"end_reason__exact": "upstream_error"}, 1),
        ({"model": "gemini-other"}, 1), ({"user__id__exact": str(user.pk)}, 2),
        ({"started_at__year": "2026", "started_at__month": "11"}, 3),
    ):  # fmt: skip
        assert admin_client.get(url, params).context["cl"].result_count == count, params

    page = admin_client.get(url).content.decode()
    for header in (
        "Duration",
        "Lines",
        "Prompt tokens",
        "Response tokens",
        "Total tokens",
        "Cost (USD)",
        "Resumptions",
    ):
        assert header in page, header
    row = re.search(rf"<tr>(?:(?!</tr>).)*{target.pk}(?:(?!</tr>).)*</tr>", page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="field-(\w+)[^"]*">([^<]*)</td>', row.group(0))
    assert ("duration_display", "0:03:00") in cells
    assert ("line_count", "2") in cells
    assert ("resumptions", "1") in cells
    assert ("total_tokens", "42") in cells
    assert 'href="/admin/sessions_app/livesession/usage/"' in page

    change = admin_client.get(reverse("admin:sessions_app_livesession_change", args=[noted.pk]))
    body = change.content.decode()
    assert "Platypus plan" in body
    assert "feed it" in body
    assert 'name="notes-0-title"' not in body  # read-only


def test_history_search_paginates_and_keeps_the_query(
    client: Any, user: Any, other_user: Any
) -> None:
    per_page = views.SESSIONS_PER_PAGE
    for index in range(per_page + 2):
        make_session(user, [("user", "typed", f"walrus number {index}")],
                     started_at=T0 + timedelta(minutes=index))  # fmt: skip
    make_session(user, [("user", "typed", "nothing here")], [("Walrus care", "fish")],
                 started_at=T0 - timedelta(days=1))  # fmt: skip
    make_session(other_user, [("user", "typed", "walrus of bob")])
    make_session(user, [("user", "typed", "no match")], started_at=T0 + timedelta(days=1))
    client.force_login(user)

    first = client.get(reverse("session_list"), {"q": "WALRUS"})
    assert first.context["page"].paginator.count == per_page + 3  # lines or notes; own only
    assert len(first.context["page"].object_list) == per_page
    assert 'href="?q=WALRUS&amp;page=2"' in first.content.decode()
    second = client.get(reverse("session_list"), {"q": "WALRUS", "page": 2})
    assert len(second.context["page"].object_list) == 3
    assert second.context["page"].object_list[2].notes.get().title == "Walrus care"
    empty = client.get(reverse("session_list"), {"q": "zebra"})
    assert "No session mentions “zebra”." in empty.content.decode()
    everything = client.get(reverse("session_list"))
    assert everything.context["page"].paginator.count == per_page + 4


def test_transcript_page_shows_notes_and_offers_downloads(client: Any, user: Any) -> None:
    session = make_session(user, TRICKY_LINES, TRICKY_NOTES)
    client.force_login(user)
    page = client.get(reverse("session_detail", args=[session.pk])).content.decode()
    assert page.index("Export steps") < page.index("=SUM(A1)")
    assert "<b>" not in page
    assert "+cell, @cell, -cell" in page
    md_url = reverse("session_export", args=[session.pk, "md"])
    json_url = reverse("session_export", args=[session.pk, "json"])
    assert f'href="{md_url}"' in page
    assert f'href="{json_url}"' in page

    markdown = client.get(md_url)
    assert markdown["Content-Disposition"] == (
        f'attachment; filename="session-20261103-093005-{str(session.pk)[:8]}.md"'
    )
    parsed = read_markdown(markdown.content.decode())[str(session.pk)]
    assert [line["text"] for line in parsed["lines"]] == [text for _, _, text in TRICKY_LINES]
    assert [(n["title"], n["body"]) for n in parsed["notes"]] == TRICKY_NOTES
    document = json.loads(client.get(json_url).content)
    assert [n["title"] for n in document["sessions"][0]["notes"]] == [t for t, _ in TRICKY_NOTES]
    assert client.get(reverse("session_export", args=[session.pk, "csv"])).status_code == 404
    assert client.get(reverse("session_export", args=[session.pk, "exe"])).status_code == 404


def test_usage_view_sums_sessions_minutes_and_tokens_per_user(
    admin_client: Any, user: Any, other_user: Any
) -> None:
    day = T0.date()
    make_session(user, [], total_tokens=100, prompt_tokens=70, response_tokens=30,
                 cost_usd=Decimal("0.25"))  # fmt: skip
    make_session(user, [], started_at=T0 + timedelta(days=1), length=timedelta(minutes=7),
                 total_tokens=50, prompt_tokens=20, response_tokens=30,
                 cost_usd=Decimal("0.000125"))  # fmt: skip
    make_session(other_user, [], length=timedelta(seconds=90), total_tokens=10,
                 prompt_tokens=4, response_tokens=6)  # fmt: skip  # no price: no cost
    make_session(user, [], started_at=T0 - timedelta(days=1), total_tokens=999)  # out of range
    make_session(user, [], started_at=T0 + timedelta(days=2), total_tokens=999)  # out of range
    url = reverse("admin:sessions_app_livesession_usage")

    response = admin_client.get(
        url, {"start": day.isoformat(), "end": (day + timedelta(1)).isoformat()}
    )
    assert response.status_code == 200
    rows = [(r.username, r.sessions, r.minutes, r.prompt_tokens, r.response_tokens, r.total_tokens)
            for r in response.context["rows"]]  # fmt: skip
    assert rows == [("alice", 2, 10.0, 90, 60, 150), ("bob", 1, 1.5, 4, 6, 10)]
    totals = response.context["totals"]
    assert (totals.sessions, totals.minutes, totals.total_tokens) == (3, 11.5, 160)
    costs = [(r.username, r.cost_usd, r.unpriced) for r in response.context["rows"]]
    assert costs == [("alice", Decimal("0.250125"), 0), ("bob", Decimal(0), 1)]
    assert (totals.cost_usd, totals.unpriced) == (Decimal("0.250125"), 1)
    body = response.content.decode()
    assert '<tr data-user="alice">' in body
    assert "<td>10.0</td>" in body
    assert "0.2501" in body  # alice's cost, shown to the hundredth of a cent
    assert "1 session without a price" in body  # bob's

    backwards = admin_client.get(url, {"start": "2026-11-05", "end": "2026-11-01"})
    assert backwards.context["rows"] == []
    assert "The start date must not be after the end date." in backwards.content.decode()
    assert admin_client.get(url).status_code == 200  # the last 30 days by default


def test_usage_view_needs_view_permission(client: Any, django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("helpdesk", password="pw-12345678", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:sessions_app_livesession_usage")).status_code == 403


def run_purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_sessions", *args, stdout=out)
    return out.getvalue()


def test_purge_sessions_removes_only_sessions_older_than_the_cutoff(
    user: Any, settings: Any
) -> None:
    now = timezone.now()
    old = make_session(
        user, TRICKY_LINES[:2], TRICKY_NOTES[:1], started_at=now - timedelta(days=91)
    )
    older = make_session(user, TRICKY_LINES[:3], [], started_at=now - timedelta(days=400))
    recent = make_session(user, TRICKY_LINES, TRICKY_NOTES, started_at=now - timedelta(days=89))
    old_but_live = make_session(
        user, [("user", "typed", "x")], started_at=now - timedelta(days=200),
        status=LiveSession.Status.ACTIVE, end_reason="",
    )  # fmt: skip
    before = (LiveSession.objects.count(), TranscriptEntry.objects.count(), Note.objects.count())

    assert run_purge("--dry-run") == (
        "Would delete 2 session(s) older than 90 day(s), with 5 transcript line(s) and 1 note(s).\n"
    )
    assert (
        LiveSession.objects.count(),
        TranscriptEntry.objects.count(),
        Note.objects.count(),
    ) == before

    assert run_purge() == (
        "Deleted 2 session(s) older than 90 day(s), with 5 transcript line(s) and 1 note(s).\n"
    )
    assert set(LiveSession.objects.all()) == {recent, old_but_live}
    assert not TranscriptEntry.objects.filter(session_id__in=[old.pk, older.pk]).exists()
    assert not Note.objects.filter(session_id__in=[old.pk, older.pk]).exists()
    assert recent.entries.count() == len(TRICKY_LINES)
    assert recent.notes.count() == 2

    assert run_purge("--older-than", "30") == (
        "Deleted 1 session(s) older than 30 day(s), with 6 transcript line(s) and 2 note(s).\n"
    )
    assert list(LiveSession.objects.all()) == [old_but_live]

    settings.SESSION_RETENTION_DAYS = 0
    assert "kept forever" in run_purge()
    with pytest.raises(CommandError, match="at least 1 day"):
        run_purge("--older-than", "0")
    assert list(LiveSession.objects.all()) == [old_but_live]
