"""App configuration."""

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    """Live screen-share sessions and their transcripts."""

    name = "sessions_app"
    verbose_name = "Live sessions"
    default_auto_field = "django.db.models.BigAutoField"
