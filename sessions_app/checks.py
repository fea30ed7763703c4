"""System checks (``manage.py check``) for the Gemini Live settings."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from sessions_app.live.models import MODELS, RETIRED


@register()
def gemini_model_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when GEMINI_MODEL names a retired model or one the model table does not know."""
    model = settings.GEMINI_MODEL.removeprefix("models/")
    known = ", ".join(MODELS)
    if model in RETIRED:
        return [
            Warning(
                f"GEMINI_MODEL is {model!r}, a retired model: the service refuses every"
                " session with it (close code 1008).",
                hint=f"Set GEMINI_MODEL to a current model: {known}.",
                id="sessions_app.W001",
            )
        ]
    if model not in MODELS:
        return [
            Warning(
                f"GEMINI_MODEL is {model!r}, which sessions_app.live.models does not know:"
                " sessions use only the settings every Live model accepts.",
                hint=f"Known models: {known}. Add the model to the table if it is new.",
                id="sessions_app.W002",
            )
        ]
    return []
