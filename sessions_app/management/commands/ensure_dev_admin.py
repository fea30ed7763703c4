"""Create a local admin account on a fresh development database."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """In DEBUG only: on a database with no users, create `admin` and print its password once."""

    help = __doc__

    def add_arguments(self, parser: Any) -> None:
        """--username sets the account name."""
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        """Create the account unless any user exists."""
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: no development account is created.")
            return
        user_model = get_user_model()
        if user_model.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email="", password=password)
        banner = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"{banner}\nCreated a local admin account (shown only this once):\n"
                f"  username: {username}\n  password: {password}\n{banner}"
            )
        )
