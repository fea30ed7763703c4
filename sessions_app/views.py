"""Pages: the share page, the user's history and one transcript."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from sessions_app.models import LiveSession

SESSIONS_PER_PAGE = 25
FRAME_RATES = (0.2, 0.5, 1.0, 2.0)


@login_required
def share(request: HttpRequest) -> HttpResponse:
    """The share page: screen, mic, live transcript."""
    capture = {
        "max_side": settings.SHARE_FRAME_MAX_SIDE,
        "quality": settings.SHARE_FRAME_QUALITY,
        "fps": settings.SHARE_FRAME_RATE,
        "keyframe_s": settings.SHARE_KEYFRAME_S,
        "change_threshold": settings.SHARE_CHANGE_THRESHOLD,
    }
    return render(
        request,
        "sessions_app/share.html",
        {
            "voices": settings.GEMINI_VOICES,
            "default_voice": settings.GEMINI_DEFAULT_VOICE,
            "capture": capture,
            "frame_rates": FRAME_RATES,
        },
    )


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The user's own sessions, newest first."""
    sessions = (
        LiveSession.objects.filter(user=request.user)
        .annotate(line_count=Count("entries"))
        .order_by("-started_at")
    )
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "sessions_app/session_list.html", {"page": page})


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
    """One transcript, for its owner and for staff allowed to view sessions."""
    session = visible_session(request, session_id)
    return render(
        request,
        "sessions_app/session_detail.html",
        {"session": session, "entries": session.entries.all()},
    )
