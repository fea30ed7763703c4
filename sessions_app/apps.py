"""App configuration."""

from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    """Live screen-share sessions and their transcripts."""

    name = "sessions_app"
    verbose_name = "Live sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks; count metrics if someone may read them."""
        from django.conf import settings

        from sessions_app import checks, metrics  # noqa: F401

        metrics.configure(enabled=bool(settings.METRICS_TOKEN))
