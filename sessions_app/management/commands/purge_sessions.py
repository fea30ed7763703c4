"""Delete sessions past the retention period, with their transcripts and notes."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app import services


class Command(BaseCommand):
    help = (
        "Delete sessions that started more than --older-than days ago (default:"
        " SESSION_RETENTION_DAYS), with their transcript lines and notes. Live sessions"
        " are kept. --dry-run only counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--older-than DAYS, --dry-run."""
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Age in days past which a session is deleted (default: SESSION_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Purge (or count) and report."""
        days = options["older_than"]
        if days is None:
            days = settings.SESSION_RETENTION_DAYS
            if days == 0:
                self.stdout.write("SESSION_RETENTION_DAYS is 0: sessions are kept forever.")
                return
        if days < 1:
            raise CommandError("--older-than must be at least 1 day.")
        dry_run = options["dry_run"]
        counts = services.sessions_purge(older_than_days=days, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {counts.sessions} session(s) older than {days} day(s), with"
            f" {counts.lines} transcript line(s) and {counts.notes} note(s)."
        )
