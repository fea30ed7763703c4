"""Pages and admin: login, share page, history, transcript ownership, admin review."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from sessions_app.models import LiveSession, TranscriptEntry

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def make_session(user: Any, *lines: tuple[str, str, str]) -> LiveSession:
    session = LiveSession.objects.create(
        user=user, model="gemini-test", response_modality="AUDIO", voice="Puck", total_tokens=42
    )
    for sequence, (role, source, text) in enumerate(lines, start=1):
        TranscriptEntry.objects.create(
            session=session, sequence=sequence, role=role, source=source, text=text
        )
    return session


def test_login_page_renders(client: Any) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.parametrize("name", ["share", "session_list"])
def test_pages_require_login(client: Any, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_then_share_page(client: Any, user: Any, settings: Any) -> None:
    settings.GEMINI_API_KEY = ""
    response = client.post(
        reverse("login"), {"username": "alice", "password": "alice-pass-123"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("share")
    body = response.content.decode()
    assert 'data-testid="start"' in body
    assert 'data-testid="offline-notice"' in body


def test_share_page_with_a_key_shows_no_offline_notice(
    client: Any, user: Any, settings: Any
) -> None:
    settings.GEMINI_API_KEY = "a-real-key-value"
    client.force_login(user)
    body = client.get(reverse("share")).content.decode()
    assert 'data-testid="offline-notice"' not in body
    assert "a-real-key-value" not in body


def test_history_lists_only_own_sessions(client: Any, user: Any, other_user: Any) -> None:
    own = make_session(user, ("user", "typed", "mine"))
    theirs = make_session(other_user, ("user", "typed", "theirs"))
    client.force_login(user)
    body = client.get(reverse("session_list")).content.decode()
    assert reverse("session_detail", args=[own.pk]) in body
    assert reverse("session_detail", args=[theirs.pk]) not in body


def test_transcript_page_owner_only(client: Any, user: Any, other_user: Any) -> None:
    session = make_session(user, ("user", "typed", "first line"), ("model", "speech", "reply"))
    url = reverse("session_detail", args=[session.pk])
    client.force_login(user)
    body = client.get(url).content.decode()
    assert body.index("first line") < body.index("reply")
    client.force_login(other_user)
    assert client.get(url).status_code == 404


def test_admin_changelist_search_and_change_page(admin_client: Any, user: Any) -> None:
    session = make_session(
        user, ("user", "speech", "where is the zeppelin button"), ("model", "speech", "Top left.")
    )
    make_session(user, ("user", "typed", "unrelated"))
    changelist = reverse("admin:sessions_app_livesession_changelist")
    response = admin_client.get(changelist)
    assert response.status_code == 200
    assert b"alice" in response.content

    found = admin_client.get(changelist, {"q": "zeppelin"})
    assert found.context["cl"].result_count == 1
    assert list(found.context["cl"].result_list) == [session]

    change = admin_client.get(reverse("admin:sessions_app_livesession_change", args=[session.pk]))
    assert change.status_code == 200
    body = change.content.decode()
    assert body.index("where is the zeppelin button") < body.index("Top left.")
    # Read-only: no form fields for transcript lines, no add or save.
    assert 'name="entries-0-text"' not in body
    assert 'name="_save"' not in body
    assert admin_client.get(reverse("admin:sessions_app_livesession_add")).status_code == 403


def test_missing_secret_key_outside_debug_stops_startup() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_missing_allowed_hosts_outside_debug_stops_startup() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x" * 50)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS is not set" in result.stderr


def test_dev_admin_is_created_once_in_debug_only(settings: Any, django_user_model: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.DEBUG = False
    out = StringIO()
    call_command("ensure_dev_admin", stdout=out)
    assert not django_user_model.objects.exists()

    settings.DEBUG = True
    call_command("ensure_dev_admin", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password)

    again = StringIO()
    call_command("ensure_dev_admin", stdout=again)
    assert again.getvalue() == ""
