"""Sessions as files: JSON (a documented schema), Markdown (a readable transcript) and CSV.

One function a format, each taking sessions with their ``entries`` and ``notes`` (use
:func:`export_queryset` to fetch them in three queries). Every format holds every
transcript line and every note, in order, with roles and timestamps; the parsers for
Markdown and CSV in the tests read them back. The schema is in docs/exports.md.

Times are UTC: ISO 8601 with microseconds in JSON and CSV, whole seconds in Markdown.
"""

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.utils import timezone

from sessions_app.models import LiveSession, Note, TranscriptEntry

SCHEMA = "screenshare-assistant.sessions/1"
CSV_COLUMNS = (
    "session_id", "user", "kind", "sequence", "created_at", "role", "source", "title", "text",
    "total_tokens", "cost_usd",
)  # fmt: skip
SPEAKERS: dict[str, str] = {
    TranscriptEntry.Role.USER: "User",
    TranscriptEntry.Role.MODEL: "Assistant",
}
MARKDOWN_TIME = "%Y-%m-%d %H:%M:%S UTC"


@dataclass(frozen=True)
class ExportFormat:
    """How one format is named, served and written."""

    name: str
    extension: str
    content_type: str
    label: str


FORMATS = {
    "json": ExportFormat("json", "json", "application/json", "JSON"),
    "md": ExportFormat("md", "md", "text/markdown; charset=utf-8", "Markdown"),
    "csv": ExportFormat("csv", "csv", "text/csv; charset=utf-8", "CSV"),
}


def export_queryset(sessions: QuerySet[LiveSession]) -> QuerySet[LiveSession]:
    """``sessions`` with their user, transcript lines and notes, oldest session first."""
    return (
        sessions.select_related("user")
        .prefetch_related(
            Prefetch("entries", queryset=TranscriptEntry.objects.order_by("sequence")),
            Prefetch("notes", queryset=Note.objects.order_by("created_at", "id")),
        )
        .order_by("started_at", "pk")
    )


def render(fmt: str, sessions: Iterable[LiveSession]) -> str:
    """``sessions`` in the format named ``fmt`` (a key of :data:`FORMATS`)."""
    writers = {"json": to_json, "md": to_markdown, "csv": to_csv}
    return writers[fmt](sessions)


def filename(fmt: str, sessions: list[LiveSession]) -> str:
    """A download name: the session's start for one session, the export time for several."""
    if len(sessions) == 1:
        stem = f"session-{_utc(sessions[0].started_at):%Y%m%d-%H%M%S}-{str(sessions[0].pk)[:8]}"
    else:
        stem = f"sessions-{_utc(timezone.now()):%Y%m%d-%H%M%S}"
    return f"{stem}.{FORMATS[fmt].extension}"


def download(fmt: str, sessions: QuerySet[LiveSession]) -> HttpResponse:
    """An attachment holding ``sessions`` in the format ``fmt``."""
    fetched = list(export_queryset(sessions))
    response = HttpResponse(render(fmt, fetched), content_type=FORMATS[fmt].content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename(fmt, fetched)}"'
    return response


# JSON


def session_data(session: LiveSession) -> dict[str, Any]:
    """One session as the JSON export describes it."""
    duration = session.duration
    return {
        "id": str(session.pk),
        "user": session.user.get_username(),
        "started_at": _iso(session.started_at),
        "ended_at": _iso(session.ended_at) if session.ended_at else None,
        "duration_s": round(duration.total_seconds(), 3) if duration is not None else None,
        "status": session.status,
        "end_reason": session.end_reason,
        "model": session.model,
        "response_modality": session.response_modality,
        "voice": session.voice,
        "resumptions": session.resumptions,
        "cost_usd": _usd(session.cost_usd),
        "tokens": {
            "prompt": session.prompt_tokens,
            "response": session.response_tokens,
            "total": session.total_tokens,
            "prompt_by_modality": dict(session.prompt_tokens_by_modality),
            "response_by_modality": dict(session.response_tokens_by_modality),
        },
        "transcript": [
            {
                "sequence": entry.sequence,
                "role": entry.role,
                "source": entry.source,
                "text": entry.text,
                "created_at": _iso(entry.created_at),
            }
            for entry in session.entries.all()
        ],
        "notes": [
            {
                "id": note.pk,
                "title": note.title,
                "body": note.body,
                "created_at": _iso(note.created_at),
            }
            for note in session.notes.all()
        ],
    }


def to_json(sessions: Iterable[LiveSession]) -> str:
    """The JSON export: ``{"schema", "exported_at", "sessions": [...]}``."""
    document = {
        "schema": SCHEMA,
        "exported_at": _iso(timezone.now()),
        "sessions": [session_data(session) for session in sessions],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


# Markdown


def to_markdown(sessions: Iterable[LiveSession]) -> str:
    """A readable transcript per session: who said what and when, then the notes."""
    out: list[str] = []
    for session in sessions:
        out += [f"# Session {_md_time(session.started_at)}", ""]
        out += [f"- {label}: {value}" for label, value in _markdown_facts(session)]
        out += ["", "## Transcript", ""]
        entries = list(session.entries.all())
        for entry in entries:
            speaker = SPEAKERS.get(entry.role, entry.role)
            typed = " (typed)" if entry.source == TranscriptEntry.Source.TYPED else ""
            first, *more = entry.text.split("\n")
            out.append(f"- **[{_md_time(entry.created_at)}] {speaker}{typed}:** {first}")
            out += [f"  {line}" for line in more]
        if not entries:
            out.append("_No transcript lines._")
        notes = list(session.notes.all())
        if notes:
            out += ["", "## Notes"]
            for note in notes:
                out += ["", f"### {note.title}", "", f"_Saved {_md_time(note.created_at)}_", ""]
                out += [f"> {line}".rstrip() for line in note.body.split("\n")]
        out.append("")
    return "\n".join(out)


def _markdown_facts(session: LiveSession) -> list[tuple[str, str]]:
    """The header lines of one session in Markdown."""
    duration = session.duration
    reason = f" ({session.get_end_reason_display()})" if session.end_reason else ""
    return [
        ("Session", f"`{session.pk}`"),
        ("User", session.user.get_username()),
        ("Status", f"{session.get_status_display()}{reason}"),
        ("Duration", hms(duration.total_seconds()) if duration is not None else "-"),
        ("Model", f"{session.model} ({session.get_response_modality_display()})"),
        (
            "Tokens",
            f"{session.total_tokens} ({session.prompt_tokens} in, {session.response_tokens} out)",
        ),
        ("Estimated cost", "-" if session.cost_usd is None else f"${session.cost_usd:.4f}"),
        ("Resumptions", str(session.resumptions)),
    ]


# CSV


def to_csv(sessions: Iterable[LiveSession]) -> str:
    """Per session: one row for the session itself (``kind=session``: its tokens and cost),
    one per transcript line (``kind=line``), then one per note (``kind=note``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for session in sessions:
        user = session.user.get_username()
        cost = "" if session.cost_usd is None else f"{session.cost_usd:.6f}"
        writer.writerow(
            [session.pk, user, "session", "", _iso(session.started_at), "", "",
             session.status, "", session.total_tokens, cost]
        )  # fmt: skip
        for entry in session.entries.all():
            writer.writerow(
                [session.pk, user, "line", entry.sequence, _iso(entry.created_at),
                 entry.role, entry.source, "", _csv_safe(entry.text), "", ""]
            )  # fmt: skip
        for note in session.notes.all():
            writer.writerow(
                [session.pk, user, "note", "", _iso(note.created_at),
                 TranscriptEntry.Role.MODEL, "", _csv_safe(note.title), _csv_safe(note.body),
                 "", ""]
            )  # fmt: skip
    return buffer.getvalue()


def _csv_safe(text: str) -> str:
    """Text a spreadsheet shows as text, never runs as a formula (a leading ``'``).

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return would be
    evaluated by spreadsheet programs (CSV injection); readers strip one leading ``'``.
    """
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else text


# Helpers


def _usd(amount: Decimal | None) -> float | None:
    """An estimated cost for JSON: USD as a number, None when the model had no price."""
    return None if amount is None else float(amount)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC."""
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    """ISO 8601 in UTC, with microseconds."""
    return _utc(moment).isoformat(timespec="microseconds")


def _md_time(moment: datetime) -> str:
    """A readable UTC time to the second."""
    return _utc(moment).strftime(MARKDOWN_TIME)


def hms(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
