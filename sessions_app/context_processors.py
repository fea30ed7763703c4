"""Template context shared by every page."""

from django.http import HttpRequest

from sessions_app.live.config import LiveConfig


def live_model(request: HttpRequest) -> dict[str, object]:
    """Tell templates which model answers and whether it is the offline stand-in."""
    config = LiveConfig.from_settings()
    return {"live_model_name": config.model, "live_offline_demo": config.offline_demo}
