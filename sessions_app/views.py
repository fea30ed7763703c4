"""Pages: the share page, the user's history and one transcript."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import get_language

from sessions_app import exports, languages
from sessions_app.models import LiveSession, Note, TranscriptEntry

SESSIONS_PER_PAGE = 25
SEARCH_MAX_CHARS = 200
FRAME_RATES = (0.2, 0.5, 1.0, 2.0)


class AuthenticatedHttpRequest(HttpRequest):
    """A request of a @login_required view: its user is logged in."""

    user: User


@login_required
def share(request: HttpRequest) -> HttpResponse:
    """The share page: screen, mic, live transcript."""
    capture = {
        "max_side": settings.SHARE_FRAME_MAX_SIDE,
        "quality": settings.SHARE_FRAME_QUALITY,
        "fps": settings.SHARE_FRAME_RATE,
        "keyframe_s": settings.SHARE_KEYFRAME_S,
        "idle_keyframe_s": settings.SHARE_IDLE_KEYFRAME_S,
        "change_threshold": settings.SHARE_CHANGE_THRESHOLD,
    }
    # The configured default is always one of the choices, even if it is none of ours.
    rates = sorted({*FRAME_RATES, settings.SHARE_FRAME_RATE})
    return render(
        request,
        "sessions_app/share.html",
        {
            "voices": settings.GEMINI_VOICES,
            "default_voice": settings.GEMINI_DEFAULT_VOICE,
            "speech_languages": languages.speech_language_choices(),
            "default_speech_language": languages.page_speech_language(get_language()),
            "capture": capture,
            "frame_rates": rates,
        },
    )


@login_required
def session_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The user's own sessions, newest first; ``q`` finds words in transcripts and notes."""
    query = request.GET.get("q", "").strip()[:SEARCH_MAX_CHARS]
    sessions = LiveSession.objects.filter(user=request.user)
    if query:
        sessions = sessions.filter(_mentions(query))
    sessions = sessions.annotate(line_count=Count("entries")).order_by("-started_at")
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "sessions_app/session_list.html", {"page": page, "query": query})


def _mentions(query: str) -> Q:
    """Sessions whose transcript or notes hold ``query`` (case-insensitive)."""
    in_lines = TranscriptEntry.objects.filter(session=OuterRef("pk"), text__icontains=query)
    in_notes = Note.objects.filter(session=OuterRef("pk")).filter(
        Q(title__icontains=query) | Q(body__icontains=query)
    )
    return Q(Exists(in_lines)) | Q(Exists(in_notes))


def visible_session(request: HttpRequest, session_id: str) -> LiveSession:
    """A session the user may read: their own, or any for staff who may view sessions.

    To everyone else it does not exist (404), so ids cannot be probed.
    """
    session = get_object_or_404(LiveSession.objects.select_related("user"), pk=session_id)
    user = request.user
    if session.user_id != user.pk and not (
        user.is_staff and user.has_perm("sessions_app.view_livesession")
    ):
        raise Http404("No such session.")
    return session


@login_required
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    """One transcript and its notes, for its owner and for staff allowed to view sessions."""
    session = visible_session(request, session_id)
    return render(
        request,
        "sessions_app/session_detail.html",
        {
            "session": session,
            "entries": session.entries.order_by("sequence"),
            "notes": session.notes.order_by("created_at", "id"),
            "downloads": [exports.FORMATS[name] for name in DOWNLOAD_FORMATS],
        },
    )


DOWNLOAD_FORMATS = ("md", "json")


@login_required
def session_export(request: HttpRequest, session_id: str, fmt: str) -> HttpResponse:
    """One session as a Markdown or JSON download, for whoever may read it."""
    if fmt not in DOWNLOAD_FORMATS:
        raise Http404("No such format.")
    session = visible_session(request, session_id)
    return exports.download(fmt, LiveSession.objects.filter(pk=session.pk))
