"""Template context shared by every page."""

from django.conf import settings
from django.http import HttpRequest


def live_model(request: HttpRequest) -> dict[str, object]:
    """Tell templates which model answers and whether it is the offline stand-in."""
    return {
        "live_model_name": settings.GEMINI_MODEL,
        "live_offline_demo": not settings.GEMINI_API_KEY,
    }
