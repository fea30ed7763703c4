"""Bad configuration stops start-up with a clear error, never a crash in a session.

Each case runs ``manage.py check --deploy`` (what deploy/release.sh runs before the
workers start) in a subprocess with a clean, production-like environment, as
test_production_settings.py does, and asserts the exit status and the exact error id and
message. A session that starts with an unreadable CA bundle anyway (no release step, say)
ends properly: tests/integration/test_service_faults.py::
test_an_unreadable_ca_bundle_fails_the_session_and_leaves_nothing_running.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from sessions_app.live.models import MODELS
from sessions_app.prices import DEFAULT_PRICES, RATES, Prices, parse_prices, prices_for
from tests.conftest import require
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHECK = ["manage.py", "check", "--deploy"]
# Set by the test run, not by a deployment: a case sets what it needs.
RUN_ONLY = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "GEMINI_")


def clean_env(**overrides: str) -> dict[str, str]:
    """A production-like environment (no debug, SQLite, no Redis) plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(RUN_ONLY)}
    env.update(
        DJANGO_SETTINGS_MODULE="assistant_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="assistant.example.com",
        GEMINI_API_KEY="not-a-real-key",
    )
    env.update(overrides)
    return env


def check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check --deploy`` under ``clean_env(**overrides)``."""
    return subprocess.run(
        [sys.executable, *CHECK],
        cwd=ROOT,
        env=clean_env(**overrides),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_ids(output: str) -> list[str]:
    """The ids of the sessions_app checks the output reports."""
    return [
        line.split(")")[0].split("(")[1] for line in output.splitlines() if "(sessions_app." in line
    ]


def test_a_clean_configuration_passes() -> None:
    result = check_deploy()
    assert result.returncode == 0, result.stderr
    assert check_ids(result.stdout + result.stderr) == []


def test_an_unreadable_ca_bundle_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = check_deploy(GEMINI_CA_BUNDLE=str(missing))
    assert result.returncode == 1
    assert (
        f"?: (sessions_app.E001) GEMINI_CA_BUNDLE {str(missing)!r} cannot be loaded as PEM CA"
        " certificates: No such file or directory.\n\tHINT: Point GEMINI_CA_BUNDLE at a readable"
        " PEM file of CA certificates, or unset it to trust the system CAs."
    ) in result.stderr
    not_pem = tmp_path / "not-pem.pem"
    not_pem.write_text("not a certificate\n")
    result = check_deploy(GEMINI_CA_BUNDLE=str(not_pem))
    assert result.returncode == 1
    assert check_ids(result.stderr) == ["sessions_app.E001"]
    assert "no certificate or crl found" in result.stderr


def test_a_malformed_database_url_stops_the_settings_with_one_line() -> None:
    result = check_deploy(DATABASE_URL="postgres://app:s3cret-pw@db.example:notaport/app")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL is malformed (ValueError);"
        " expected postgres://USER:PASSWORD@HOST:5432/NAME."
    )
    assert "s3cret-pw" not in result.stdout + result.stderr
    result = check_deploy(DATABASE_URL="postgres//db.example/app")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: DATABASE_URL has no database scheme"
        " Django knows (scheme: ''); expected"
        " postgres://USER:PASSWORD@HOST:5432/NAME."
    )


def test_an_unreachable_database_is_an_error() -> None:
    port = free_port()  # nothing listens there
    result = check_deploy(DATABASE_URL=f"postgres://app:pw@127.0.0.1:{port}/app")
    assert result.returncode == 1
    assert check_ids(result.stderr) == ["sessions_app.E002"]
    assert (
        f"?: (sessions_app.E002) DATABASE_URL: PostgreSQL at 127.0.0.1:{port} cannot be reached"
        " (Connection refused).\n\tHINT: Check the host and port in DATABASE_URL and that"
        " PostgreSQL is running and accepts connections from here."
    ) in result.stderr


def test_an_unreachable_redis_is_an_error() -> None:
    port = free_port()
    result = check_deploy(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert check_ids(result.stderr) == ["sessions_app.E003"]
    assert (
        f"?: (sessions_app.E003) REDIS_URL: Redis at 127.0.0.1:{port} does not answer"
        " (ConnectionError).\n\tHINT: Check the host and port in REDIS_URL and that Redis is"
        " running; live sessions need it for the channel layer."
    ) in result.stderr


@pytest.mark.redis
@pytest.mark.postgres
def test_reachable_database_and_redis_pass() -> None:
    """The network checks pass against the real services the suite uses."""
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    require(database_url.startswith("postgres") and bool(redis_url), "PostgreSQL and Redis")
    result = check_deploy(DATABASE_URL=database_url, REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    assert check_ids(result.stdout + result.stderr) == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{not json", "GEMINI_PRICES is not valid JSON (Expecting property name enclosed in"
         " double quotes at 1)."),
        ("[1, 2]", "GEMINI_PRICES must be a JSON object of model id -> rates."),
        (
            json.dumps({"gemini-3.8-live": {**dict.fromkeys(RATES, 1), "output_audio": -2}}),
            "GEMINI_PRICES['gemini-3.8-live']['output_audio'] is -2: it must be a non-negative"
            " number (USD per million tokens).",
        ),
        (
            json.dumps({"gemini-3.8-live": {"input_text": 1}}),
            "GEMINI_PRICES['gemini-3.8-live'] must give exactly input_text, input_audio,"
            " input_image, output_text, output_audio (missing: ['input_audio', 'input_image',"
            " 'output_text', 'output_audio']; unknown: none).",
        ),
    ],
    ids=["not-json", "not-an-object", "negative-rate", "missing-rates"],
)  # fmt: skip
def test_a_malformed_price_table_is_an_error(table: str, message: str) -> None:
    result = check_deploy(GEMINI_PRICES=table)
    assert result.returncode == 1
    assert check_ids(result.stderr) == ["sessions_app.E004"]
    assert f"?: (sessions_app.E004) {message}\n\tHINT: Set GEMINI_PRICES to JSON" in result.stderr


def test_an_unknown_model_is_a_warning_that_does_not_stop_start_up() -> None:
    """The service adds models without notice: an id the table does not know may work."""
    result = check_deploy(GEMINI_MODEL="gemini-9.9-live")
    assert result.returncode == 0
    assert check_ids(result.stderr) == ["sessions_app.W002"]
    assert (
        "?: (sessions_app.W002) GEMINI_MODEL is 'gemini-9.9-live', which sessions_app.live.models"
        " does not know: sessions use only the settings every Live model accepts."
    ) in result.stderr


def test_every_known_model_has_a_default_price_and_a_table_replaces_it() -> None:
    assert set(DEFAULT_PRICES) == set(MODELS)
    assert parse_prices("") == DEFAULT_PRICES
    mine = {"gemini-3.8-live": dict.fromkeys(RATES, 0)}
    assert parse_prices(json.dumps(mine)) == {"gemini-3.8-live": Prices(0, 0, 0, 0, 0)}


@pytest.mark.parametrize("bad", [True, "1.0", None, float("nan"), float("inf")])
def test_a_rate_must_be_a_finite_number(bad: object) -> None:
    rates = {**dict.fromkeys(RATES, 1.0), "input_audio": bad}
    with pytest.raises(ValueError, match=r"\['input_audio'\] is .* non-negative number"):
        parse_prices(json.dumps({"m": rates}, allow_nan=True))


def test_prices_for_raises_improperly_configured_on_a_malformed_table(settings: object) -> None:
    settings.GEMINI_PRICES = ""  # type: ignore[attr-defined]
    assert prices_for("models/gemini-3.8-live") == DEFAULT_PRICES["gemini-3.8-live"]
    assert prices_for("gemini-unknown") is None
    settings.GEMINI_PRICES = '{"gemini-3.8-live": 3}'  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="must be an object of the rates"):
        prices_for("gemini-3.8-live")
