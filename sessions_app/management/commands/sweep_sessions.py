"""Mark live sessions left behind by a killed worker process as interrupted."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app import services


class Command(BaseCommand):
    help = (
        "Mark sessions still 'active' whose worker stopped sending heartbeats as"
        " 'interrupted'. Run at start-up and whenever a worker was killed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--stale-after SECONDS."""
        parser.add_argument(
            "--stale-after",
            type=float,
            default=None,
            help="Seconds without a heartbeat after which a session counts as abandoned"
            " (default: SHARE_STALE_AFTER_S).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Sweep and report the count."""
        stale_after = options["stale_after"]
        if stale_after is None:
            stale_after = settings.SHARE_STALE_AFTER_S
        if stale_after < 0:
            raise CommandError("--stale-after must not be negative.")
        count = services.stale_sessions_sweep(stale_after_s=stale_after)
        self.stdout.write(f"Marked {count} abandoned session(s) as interrupted.")
