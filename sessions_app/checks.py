"""System checks (``manage.py check``) for the settings a session depends on.

Each problem has an id, one line and a hint; the release step (deploy/release.sh) runs
``manage.py check --deploy``, so an error stops start-up there rather than failing
sessions later. The checks that reach the network (PostgreSQL, Redis) are deploy-tagged
and give up after ``CONNECT_TIMEOUT_S``.

- ``sessions_app.E001``: ``GEMINI_CA_BUNDLE`` is set but cannot be read as PEM CAs.
- ``sessions_app.E002``: the ``DATABASE_URL`` host does not accept connections. (A
  malformed ``DATABASE_URL`` stops the settings from loading, with one line.)
- ``sessions_app.E003``: the ``REDIS_URL`` Redis does not answer.
- ``sessions_app.E004``: ``GEMINI_PRICES`` is malformed (:mod:`sessions_app.prices`).
- ``sessions_app.W001`` / ``W002``: ``GEMINI_MODEL`` is retired / unknown. An unknown id
  stays a warning: the service adds models without notice, and one this table does not
  know yet may well work; the service's own refusal (1008) is reported to the user.
"""

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from sessions_app.live.models import MODELS, RETIRED
from sessions_app.prices import parse_prices

CONNECT_TIMEOUT_S = 3.0


@register()
def gemini_model_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when GEMINI_MODEL names a retired model or one the model table does not know."""
    model = settings.GEMINI_MODEL.removeprefix("models/")
    known = ", ".join(MODELS)
    if model in RETIRED:
        return [
            Warning(
                f"GEMINI_MODEL is {model!r}, a retired model: the service refuses every"
                " session with it (close code 1008).",
                hint=f"Set GEMINI_MODEL to a current model: {known}.",
                id="sessions_app.W001",
            )
        ]
    if model not in MODELS:
        return [
            Warning(
                f"GEMINI_MODEL is {model!r}, which sessions_app.live.models does not know:"
                " sessions use only the settings every Live model accepts.",
                hint=f"Known models: {known}. Add the model to the table if it is new.",
                id="sessions_app.W002",
            )
        ]
    return []


@register()
def gemini_ca_bundle_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """GEMINI_CA_BUNDLE, when set, must be a readable PEM file of CA certificates."""
    path = settings.GEMINI_CA_BUNDLE
    if not path:
        return []
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [
            Error(
                f"GEMINI_CA_BUNDLE {path!r} cannot be loaded as PEM CA certificates: {reason}.",
                hint="Point GEMINI_CA_BUNDLE at a readable PEM file of CA certificates,"
                " or unset it to trust the system CAs.",
                id="sessions_app.E001",
            )
        ]
    return []


@register(deploy=True)
def database_reachable_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The PostgreSQL server DATABASE_URL names accepts TCP connections."""
    database = settings.DATABASES["default"]
    host = str(database.get("HOST") or "")
    if "postgresql" not in database.get("ENGINE", "") or not host or host.startswith("/"):
        return []  # SQLite, or a Unix socket: nothing to reach over the network
    port = int(database.get("PORT") or 5432)
    error = _unreachable(host, port)
    if error is None:
        return []
    return [
        Error(
            f"DATABASE_URL: PostgreSQL at {host}:{port} cannot be reached ({error}).",
            hint="Check the host and port in DATABASE_URL and that PostgreSQL is running"
            " and accepts connections from here.",
            id="sessions_app.E002",
        )
    ]


@register(deploy=True)
def redis_reachable_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Redis REDIS_URL names answers a PING (the channel layer needs it)."""
    url = settings.REDIS_URL
    if not url:
        return []
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return [
            Error(
                f"REDIS_URL: Redis at {where} does not answer ({exc.__class__.__name__}).",
                hint="Check the host and port in REDIS_URL and that Redis is running;"
                " live sessions need it for the channel layer.",
                id="sessions_app.E003",
            )
        ]
    finally:
        client.close()
    return []


@register()
def gemini_prices_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """GEMINI_PRICES, when set, is a table of model -> five non-negative rates."""
    try:
        parse_prices(settings.GEMINI_PRICES)
    except ValueError as exc:
        return [
            Error(
                str(exc),
                hint='Set GEMINI_PRICES to JSON such as {"gemini-3.8-live": {"input_text": 0.75,'
                ' "input_audio": 3, "input_image": 3, "output_text": 4.5, "output_audio": 12}},'
                " or unset it for the public price list.",
                id="sessions_app.E004",
            )
        ]
    return []


def _unreachable(host: str, port: int) -> str | None:
    """Why a TCP connection to host:port fails within the timeout; None if it opens."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
