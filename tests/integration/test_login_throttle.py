"""Login throttling (django-axes): lockout per username and address, and whose address."""

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.urls import reverse

from assistant_site.security import client_ip

pytestmark = pytest.mark.django_db

LOCKED = 429  # django-axes' AXES_HTTP_RESPONSE_CODE default since 6.0


def limit() -> int:
    """The configured number of failures that locks a username and address out."""
    return int(django_settings.AXES_FAILURE_LIMIT)


def log_in(client: Client, username: str, password: str, ip: str = "127.0.0.1", **meta: str) -> Any:
    """POST the login form from ``ip`` (REMOTE_ADDR) and return the response."""
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **meta
    )


def fail(client: Client, times: int, username: str = "alice", ip: str = "127.0.0.1") -> list[int]:
    """Fail to log in ``times`` times; the status codes of the answers."""
    return [log_in(client, username, "wrong-password", ip).status_code for _ in range(times)]


def assert_logged_in(response: Any, client: Client) -> None:
    """The login succeeded: redirected to the share page, which now opens."""
    assert response.status_code == 302, response.content[:300]
    assert response["Location"] == reverse("share")
    assert client.get(reverse("share")).status_code == 200


def assert_locked_out(response: Any, client: Client) -> None:
    """The login was refused with axes' lockout page, and nobody is logged in."""
    assert response.status_code == LOCKED
    assert 'data-testid="locked-out"' in response.content.decode()
    assert client.get(reverse("share")).status_code == 302


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """A cheap hasher: these tests check passwords dozens of times."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_lockout_is_per_username_and_address_together() -> None:
    assert limit() >= 2
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_login_before_the_limit_works(client: Client, user: Any) -> None:
    assert fail(client, limit() - 1) == [200] * (limit() - 1)
    assert_logged_in(log_in(client, "alice", "alice-pass-123"), client)


def test_after_the_limit_even_the_right_password_is_refused(client: Client, user: Any) -> None:
    # The failure that reaches the limit is already answered with the lockout.
    assert fail(client, limit()) == [200] * (limit() - 1) + [LOCKED]
    assert_locked_out(log_in(client, "alice", "alice-pass-123"), client)


def test_the_lockout_page_is_the_login_page_without_a_form(client: Client, user: Any) -> None:
    fail(client, limit())
    body = log_in(client, "alice", "alice-pass-123").content.decode()
    assert "Too many failed log-ins" in body
    assert 'name="password"' not in body


def test_other_users_and_other_addresses_are_not_locked_out(
    client: Client, user: Any, other_user: Any
) -> None:
    fail(client, limit())
    assert_locked_out(log_in(client, "alice", "alice-pass-123"), client)
    bob = Client()
    assert_logged_in(log_in(bob, "bob", "bob-pass-123"), bob)
    elsewhere = Client()
    assert_logged_in(log_in(elsewhere, "alice", "alice-pass-123", ip="10.0.0.9"), elsewhere)


def test_a_successful_login_resets_the_count(client: Client, user: Any) -> None:
    fail(client, limit() - 1)
    assert_logged_in(log_in(client, "alice", "alice-pass-123"), client)
    client.logout()
    assert fail(client, limit() - 1) == [200] * (limit() - 1)
    assert_logged_in(log_in(client, "alice", "alice-pass-123"), client)


def test_the_lockout_ends_after_the_cooloff(client: Client, user: Any) -> None:
    fail(client, limit())
    assert_locked_out(log_in(client, "alice", "alice-pass-123"), client)
    cooloff = django_settings.AXES_COOLOFF_TIME
    assert cooloff == timedelta(hours=1)
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= cooloff + timedelta(seconds=1)
        attempt.save()
    assert_logged_in(log_in(client, "alice", "alice-pass-123"), client)


def test_admin_login_is_throttled_too(client: Client, admin_user: Any) -> None:
    fail(client, limit(), username="admin")
    response = client.post(
        reverse("admin:login"),
        {"username": "admin", "password": "password"},
        REMOTE_ADDR="127.0.0.1",
    )
    assert response.status_code == LOCKED
    assert client.get(reverse("admin:index")).status_code == 302


def test_forwarded_for_is_ignored_without_a_trusted_proxy(client: Client, user: Any) -> None:
    # A client rotating spoofed X-Forwarded-For addresses is still one address.
    for i in range(limit()):
        log_in(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    response = log_in(client, "alice", "alice-pass-123", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert_locked_out(response, client)


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled(
    client: Client, user: Any, settings: Any
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    # nginx appends the address it saw; what the client sent before it is ignored.
    for i in range(limit()):
        log_in(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"6.6.6.{i}, 203.0.113.5")
    response = log_in(client, "alice", "alice-pass-123", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert_locked_out(response, client)
    # Another client behind the same proxy (same REMOTE_ADDR) is not locked out.
    other = Client()
    response = log_in(other, "alice", "alice-pass-123", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert_logged_in(response, other)


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, None, "192.0.2.1"),
        (0, "203.0.113.5", "192.0.2.1"),
        (1, None, "192.0.2.1"),
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6,203.0.113.5 ", "203.0.113.5"),
        (1, "2001:db8::7", "2001:db8::7"),
        (1, "6.6.6.6, not-an-address", "192.0.2.1"),
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        (2, "203.0.113.5", "192.0.2.1"),
    ],
)
def test_client_ip(settings: Any, proxies: int, forwarded_for: str | None, expected: str) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    meta = {"REMOTE_ADDR": "192.0.2.1"}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    assert client_ip(RequestFactory().get("/", **meta)) == expected
