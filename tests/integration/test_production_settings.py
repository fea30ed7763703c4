"""Production settings, security headers, the Content-Security-Policy and JSON logs.

Settings read from the environment are checked in subprocesses with a clean environment
(no DJANGO_* variables from the test run, which turns off the HTTPS redirect and Secure
cookies through pytest-env); request behaviour is checked in-process with the settings
the production defaults produce.
"""

import json
import logging
import os
import secrets
import subprocess
import sys
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory
from django.urls import reverse

from assistant_site.log_format import JsonFormatter
from assistant_site.security import content_security_policy
from sessions_app.models import LiveSession, TranscriptEntry

ROOT = Path(__file__).resolve().parents[2]

CHECKED_SETTINGS = (
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "SILENCED_SYSTEM_CHECKS",
    "TRUSTED_PROXY_COUNT",
    "AUTHENTICATION_BACKENDS",
    "AXES_FAILURE_LIMIT",
    "AXES_COOLOFF_TIME",
    "AXES_LOCKOUT_PARAMETERS",
    "LOG_FORMAT",
)
PRINT_SETTINGS = (
    "import json, django\n"
    "from django.conf import settings\n"
    "django.setup()\n"
    f"print(json.dumps({{n: getattr(settings, n) for n in {CHECKED_SETTINGS!r}}}, default=str))\n"
)


def production_env(**overrides: str) -> dict[str, str]:
    """The test run's environment without DJANGO_*, as production sets it, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="assistant_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="assistant.example.com",
    )
    env.update(overrides)
    return env


def make_session(user: Any) -> LiveSession:
    """A finished session of ``user`` with a two-line transcript."""
    session = LiveSession.objects.create(
        user=user, model="gemini-test", response_modality="AUDIO", voice="Puck"
    )
    for sequence, (role, source, text) in enumerate(
        [("user", "typed", "hello"), ("model", "speech", "hi")], start=1
    ):
        TranscriptEntry.objects.create(
            session=session, sequence=sequence, role=role, source=source, text=text
        )
    return session


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in the project directory with ``env``."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def settings_under(**overrides: str) -> dict[str, Any]:
    """The security settings a fresh process computes from the production environment."""
    result = run_python(["-c", PRINT_SETTINGS], production_env(**overrides))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- Settings from the environment ---------------------------------------------------------


def test_check_deploy_is_clean_in_production() -> None:
    result = run_python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_flags_a_plain_http_deployment() -> None:
    env = production_env(DJANGO_SSL_REDIRECT="0", DJANGO_SECURE_COOKIES="0")
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    for check in ("security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


def test_production_defaults() -> None:
    found = settings_under()
    assert found["DEBUG"] is False
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_HTTPONLY"] is True
    assert found["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert found["CSRF_TRUSTED_ORIGINS"] == []
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_HSTS_PRELOAD"] is False
    assert found["SILENCED_SYSTEM_CHECKS"] == ["security.W021"]
    # No proxy is trusted unless the environment says so.
    assert found["TRUSTED_PROXY_COUNT"] == 0
    assert found["SECURE_PROXY_SSL_HEADER"] is None
    assert found["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert found["SECURE_REFERRER_POLICY"] == "same-origin"
    assert found["X_FRAME_OPTIONS"] == "DENY"
    assert found["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert found["AXES_FAILURE_LIMIT"] == 5
    assert found["AXES_COOLOFF_TIME"] == "1:00:00"
    assert found["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]
    assert found["LOG_FORMAT"] == "plain"


def test_development_defaults() -> None:
    found = settings_under(DJANGO_DEBUG="1")
    assert found["SESSION_COOKIE_SECURE"] is False
    assert found["CSRF_COOKIE_SECURE"] is False
    assert found["SECURE_SSL_REDIRECT"] is False
    assert found["SECURE_HSTS_SECONDS"] == 0


def test_environment_switches() -> None:
    found = settings_under(
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SSL_REDIRECT="0",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://a.example.com,https://b.example.com:8443",
        DJANGO_HSTS_SECONDS="600",
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="0",
        DJANGO_HSTS_PRELOAD="1",
        DJANGO_TRUSTED_PROXY_COUNT="1",
        DJANGO_LOGIN_FAILURE_LIMIT="3",
        DJANGO_LOGIN_COOLOFF_S="90",
        DJANGO_LOG_FORMAT="json",
    )
    assert found["SESSION_COOKIE_SECURE"] is False
    assert found["CSRF_COOKIE_SECURE"] is False
    assert found["SECURE_SSL_REDIRECT"] is False
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://a.example.com", "https://b.example.com:8443"]
    assert found["SECURE_HSTS_SECONDS"] == 600
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert found["SECURE_HSTS_PRELOAD"] is True
    assert found["SILENCED_SYSTEM_CHECKS"] == []
    assert found["TRUSTED_PROXY_COUNT"] == 1
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["AXES_FAILURE_LIMIT"] == 3
    assert found["AXES_COOLOFF_TIME"] == "0:01:30"
    assert found["LOG_FORMAT"] == "json"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DJANGO_LOG_FORMAT", "xml", "DJANGO_LOG_FORMAT must be"),
        ("DJANGO_TRUSTED_PROXY_COUNT", "-1", "DJANGO_TRUSTED_PROXY_COUNT must be"),
    ],
)
def test_bad_values_stop_startup(variable: str, value: str, message: str) -> None:
    result = run_python(["manage.py", "check"], production_env(**{variable: value}))
    assert result.returncode != 0
    assert message in result.stderr


# --- HTTPS, cookies and headers in requests --------------------------------------------------


@pytest.fixture
def production_https(settings: Any) -> Any:
    """The production defaults for HTTPS, which the test run itself switches off."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 365 * 24 * 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return settings


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https(client: Any, production_https: Any) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


@pytest.mark.django_db
def test_health_check_is_not_redirected(client: Any, production_https: Any) -> None:
    assert client.get("/healthz").status_code != 301


@pytest.mark.django_db
def test_forwarded_proto_is_ignored_without_a_trusted_proxy(
    client: Any, production_https: Any
) -> None:
    # The run's own settings: DJANGO_TRUSTED_PROXY_COUNT is unset, so no proxy is trusted.
    response = client.get(reverse("login"), HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301


@pytest.mark.django_db
def test_behind_a_trusted_proxy_forwarded_https_is_served(
    client: Any, production_https: Any
) -> None:
    production_https.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get(reverse("login"), HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "connect-src 'self' wss://testserver" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_cookies_are_secure_httponly_and_lax(client: Any, user: Any, production_https: Any) -> None:
    page = client.get(reverse("login"), secure=True)
    csrf = page.cookies["csrftoken"]
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Lax"
    response = client.post(
        reverse("login"), {"username": "alice", "password": "alice-pass-123"}, secure=True
    )
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"


@pytest.mark.django_db
def test_share_page_security_headers(client: Any, user: Any) -> None:
    client.force_login(user)
    response = client.get(reverse("share"))
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# --- Content-Security-Policy -----------------------------------------------------------------


def parse_policy(header: str) -> dict[str, list[str]]:
    """A CSP header as {directive: [sources]}."""
    policy: dict[str, list[str]] = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


@pytest.mark.django_db
def test_share_page_policy_allows_own_scripts_and_its_websocket(client: Any, user: Any) -> None:
    client.force_login(user)
    header = client.get(reverse("share"))["Content-Security-Policy"]
    policy = parse_policy(header)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "ws://testserver"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["worker-src"] == ["'self'", "blob:"]
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header


@pytest.mark.django_db
def test_https_page_policy_allows_wss_only(client: Any, user: Any) -> None:
    client.force_login(user)
    header = client.get(reverse("share"), secure=True, HTTP_HOST="localhost:8443")[
        "Content-Security-Policy"
    ]
    assert parse_policy(header)["connect-src"] == ["'self'", "wss://localhost:8443"]


def test_policy_for_a_disallowed_host_names_no_socket(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["assistant.example.com"]
    request = RequestFactory().get("/", HTTP_HOST="evil.example.com")
    assert parse_policy(content_security_policy(request))["connect-src"] == ["'self'"]


@pytest.mark.django_db
def test_debug_error_pages_go_without_policy_only_in_debug(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    assert "Content-Security-Policy" in client.get("/no-such-page/")
    settings.DEBUG = True
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "Content-Security-Policy" not in missing
    assert "Content-Security-Policy" in client.get(reverse("login"))


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        """Start with nothing found."""
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record inline <script>, <style>, style= and on*= attributes, javascript: URLs."""
        names = {name: value or "" for name, value in attrs}
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in names.items():
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")


def inline_code(html: str) -> list[str]:
    """Every piece of ``html`` that script-src/style-src 'self' would refuse."""
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_inline_code_finder_finds_inline_code() -> None:
    html = '<p style="x"></p><script>1</script><a href="javascript:1" onclick="f()">a</a>'
    assert len(inline_code(html)) == 4
    assert inline_code('<script type="module" src="/s.js"></script>') == []


@pytest.mark.django_db
def test_site_pages_have_no_inline_code(client: Any, user: Any) -> None:
    session = make_session(user)
    assert inline_code(client.get(reverse("login")).content.decode()) == []
    client.force_login(user)
    for url in (
        reverse("share"),
        reverse("session_list"),
        reverse("session_detail", args=[session.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert "Content-Security-Policy" in response
        assert inline_code(response.content.decode()) == [], url


@pytest.mark.django_db
def test_admin_pages_have_no_inline_code(admin_client: Any, user: Any) -> None:
    session = make_session(user)
    for url in (
        reverse("admin:index"),
        reverse("admin:sessions_app_livesession_changelist"),
        reverse("admin:sessions_app_livesession_change", args=[session.pk]),
        reverse("admin:auth_user_change", args=[user.pk]),
        reverse("admin:axes_accessattempt_changelist"),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self';" in response["Content-Security-Policy"]
        assert inline_code(response.content.decode()) == [], url


# --- Structured logs -------------------------------------------------------------------------


def format_record(**extra: Any) -> dict[str, Any]:
    """Log one record with ``extra`` through JsonFormatter and parse the line back."""
    record = logging.getLogger("sessions_app.test").makeRecord(
        "sessions_app.test", logging.WARNING, __file__, 1, "user %s started", ("alice",), None
    )
    record.__dict__.update(extra)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_json_line_has_base_and_extra_fields() -> None:
    parsed = format_record(
        session_id=uuid.UUID(int=12),
        user_id=3,
        event="session_start",
        ratio=0.5,
        took=timedelta(milliseconds=1500),
        tags=("a", 1),
    )
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "sessions_app.test"
    assert parsed["message"] == "user alice started"
    assert parsed["time"].endswith("+00:00")
    assert parsed["session_id"] == "00000000-0000-0000-0000-00000000000c"
    assert parsed["user_id"] == 3
    assert parsed["event"] == "session_start"
    assert parsed["ratio"] == 0.5
    assert parsed["took"] == 1.5
    assert parsed["tags"] == ["a", 1]
    assert "args" not in parsed
    assert "msg" not in parsed


def test_json_line_never_holds_request_headers_or_body() -> None:
    request = RequestFactory().post(
        "/accounts/login/?next=/secret-query/",
        {"password": "body-secret"},
        HTTP_AUTHORIZATION="Bearer header-secret",
        HTTP_COOKIE="sessionid=cookie-secret",
    )
    parsed = format_record(request=request, status_code=403, scope={"headers": "x"}, obj=object())
    assert parsed["method"] == "POST"
    assert parsed["path"] == "/accounts/login/"
    assert parsed["status_code"] == 403
    assert parsed["obj"] == "<object>"
    text = json.dumps(parsed)
    for secret in ("body-secret", "header-secret", "cookie-secret", "secret-query"):
        assert secret not in text


def test_json_line_carries_the_traceback() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    parsed = json.loads(JsonFormatter().format(record))
    assert "ZeroDivisionError" in parsed["exception"]
    assert parsed["message"] == "failed"


def test_json_log_format_is_selected_by_the_environment() -> None:
    script = (
        "import logging, django\n"
        "django.setup()\n"
        "logging.getLogger('sessions_app.probe').warning(\n"
        "    'probe %s', 'one', extra={'session_id': 7, 'user_id': 3, 'event': 'start'})\n"
    )
    result = run_python(["-c", script], production_env(DJANGO_LOG_FORMAT="json"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    probe = next(line for line in lines if line["logger"] == "sessions_app.probe")
    assert probe["message"] == "probe one"
    assert probe["level"] == "WARNING"
    assert (probe["session_id"], probe["user_id"], probe["event"]) == (7, 3, "start")


def test_plain_log_format_is_the_default() -> None:
    script = "import logging, django\ndjango.setup()\nlogging.getLogger('p').warning('plain')\n"
    result = run_python(["-c", script], production_env())
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.endswith("plain"))
    assert " WARNING p plain" in line
