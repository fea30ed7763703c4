"""App configuration."""

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    """Live screen-share sessions and their transcripts."""

    name = "sessions_app"
    verbose_name = "Live sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks."""
        from sessions_app import checks  # noqa: F401
