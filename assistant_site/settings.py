"""Settings for the screen-share assistant, read from the environment (django-environ)."""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it, or set DJANGO_DEBUG=1 for local development."
        )
    # A per-checkout development key: stable across restarts, never committed.
    _dev_key_file = BASE_DIR / "var" / "dev-secret-key"
    if not _dev_key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _dev_key_file.parent.mkdir(parents=True, exist_ok=True)
        _dev_key_file.write_text(get_random_secret_key())
    SECRET_KEY = _dev_key_file.read_text().strip()
# .env.example's placeholder: a deployment that kept it would sign sessions with a published key.
if SECRET_KEY == "change-me" and not DEBUG:  # noqa: S105 - refused, not used
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is still the placeholder from .env.example. Generate one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS is not set. List the host names this site is served on."
        )
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    "sessions_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # django-csp, plus connect-src for the share WebSocket (CONTENT_SECURITY_POLICY below).
    "assistant_site.security.WebSocketCSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "assistant_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "sessions_app.context_processors.live_model",
            ],
        },
    },
]

ASGI_APPLICATION = "assistant_site.asgi.application"

# A malformed DATABASE_URL stops start-up with one line saying what is wrong (never the
# URL itself: it holds the password); an unreachable one is the check sessions_app.E002.
DATABASE_URL_EXAMPLE = "postgres://USER:PASSWORD@HOST:5432/NAME"
try:
    _database = env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
except (ValueError, KeyError) as _error:  # django-environ on a URL it cannot split
    raise ImproperlyConfigured(
        f"DATABASE_URL is malformed ({_error.__class__.__name__}); expected {DATABASE_URL_EXAMPLE}."
    ) from None
if "ENGINE" not in _database:
    _url = env.str("DATABASE_URL")
    _scheme = _url.partition("://")[0][:30] if "://" in _url else ""
    raise ImproperlyConfigured(
        f"DATABASE_URL has no database scheme Django knows (scheme: {_scheme!r});"
        f" expected {DATABASE_URL_EXAMPLE}."
    )
DATABASES = {"default": _database}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
# PostgreSQL: a pool of connections per worker process (Django 5.1+, psycopg_pool). Every
# database_sync_to_async call of a live session used to open and close a connection; at
# 100 sessions on one worker that was the largest cost after the media itself
# (docs/benchmarks.md). DJANGO_DB_POOL_MAX bounds the connections one worker holds.
DB_POOL_MAX = env.int("DJANGO_DB_POOL_MAX", default=8)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX > 0:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DJANGO_CONN_MAX_AGE must be 0 while the PostgreSQL pool is on"
            " (DJANGO_DB_POOL_MAX=0 turns the pool off)."
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX,
        "timeout": 10,
        # A lost connection is re-made with a doubling backoff for this long, then left
        # to the next request. The default (300 s) let the gap between two attempts grow
        # past 30 s during an outage, so the pool noticed a restarted database that much
        # later; 5 s keeps attempts at most a few seconds apart.
        "reconnect_timeout": env.float("DJANGO_DB_RECONNECT_S", default=5),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # A file, not memory, so that a test's Daphne subprocess shares the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # Consumers block on Redis for up to 5 s at a time (channels_redis'
                # brpop_timeout); redis-py's own default read timeout is also 5 s, which
                # would kill idle consumers. Give reads room above the blocking wait.
                # An unreachable Redis that drops packets fails within 3 s, not the
                # system's connect timeout (sessions_app/control.py waits outages out).
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 3}
                ],
                "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "share"
LOGOUT_REDIRECT_URL = "login"

# --- HTTPS, cookies and headers ------------------------------------------------------------
# Production defaults whenever DEBUG is off. A plain-HTTP test deployment turns off the
# redirect and the Secure cookies with DJANGO_SSL_REDIRECT=0 and DJANGO_SECURE_COOKIES=0.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=not DEBUG)
# Health checks poll the worker directly over plain HTTP; the answer reveals nothing.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_COOKIES = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# CSRF_COOKIE_HTTPONLY stays off (Django's default): it adds no protection, since the token
# is in every form anyway; the admin does not need it either way, but script that posts
# with fetch() would have to read the cookie.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# HSTS is sent on HTTPS responses only. Preloading is a commitment (hstspreload.org) an
# operator makes on purpose, so it is opt-in; see SILENCED_SYSTEM_CHECKS below.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): what the pages load, and nothing more. Scripts,
# styles and AudioWorklet modules all come from /static/ (no inline code anywhere,
# tests/integration/test_production_settings.py checks the templates); frames are drawn on
# a canvas and encoded to blobs. connect-src, 'self' and the share WebSocket of the host
# the page came from, is added per request by assistant_site.security. The Django admin of
# Django 5.2 has no inline scripts or styles and runs under the same policy.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "media-src": [SELF, "blob:"],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Reverse proxies in front of Daphne (nginx terminating TLS: 1). Only then are the
# X-Forwarded-Proto and X-Forwarded-For headers believed; each proxy must overwrite
# X-Forwarded-Proto and append to X-Forwarded-For (see README, "Security").
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("DJANGO_TRUSTED_PROXY_COUNT must be 0 or more.")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_COUNT else None
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Login throttling (django-axes) ----------------------------------------------------------
# After DJANGO_LOGIN_FAILURE_LIMIT failed log-ins for one username from one address, that
# pair is refused (HTTP 429) for DJANGO_LOGIN_COOLOFF_S seconds; 0 locks until an admin
# deletes the access attempt in /admin/axes/.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
_login_cooloff_s = env.float("DJANGO_LOGIN_COOLOFF_S", default=3600)
AXES_COOLOFF_TIME = timedelta(seconds=_login_cooloff_s) if _login_cooloff_s > 0 else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/login.html"
# The address comes from REMOTE_ADDR, or from X-Forwarded-For behind trusted proxies only.
AXES_CLIENT_IP_CALLABLE = "assistant_site.security.client_ip"

# English and Simplified Chinese. The language follows the browser (Accept-Language)
# until the user picks one with the switcher (django.views.i18n.set_language, a cookie).
# Catalogs: locale/<lang>/LC_MESSAGES/django.po (templates, Python) and djangojs.po
# (static/js, served by JavaScriptCatalog at /jsi18n/); `make messages` updates and
# compiles them, and the compiled .mo files are kept in the repository.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Whether Daphne serves /static/ itself (development); behind nginx it does not.
SERVE_STATIC = env.bool("DJANGO_SERVE_STATIC", default=DEBUG)

# "plain" for reading in a terminal; "json" for a log collector: one JSON object a line
# (assistant_site.log_format). Neither ever includes request headers or bodies.
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("DJANGO_LOG_FORMAT must be 'plain' or 'json'.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "assistant_site.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # The SDK's HTTP stack logs request headers at DEBUG; keep it quiet so keys never leak.
        "httpx": {"level": "WARNING"},
        "websockets": {"level": "WARNING"},
    },
}

# --- Gemini Live -------------------------------------------------------------------------
# Without a key the site runs against the built-in offline stand-in (standin/, the "offline
# demo model"): always in development, and with DEBUG off only when GEMINI_OFFLINE_DEMO=1
# says so, so that a production deployment that lost its key does not quietly serve a fake.
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
GEMINI_OFFLINE_DEMO = env.bool("GEMINI_OFFLINE_DEMO", default=False)
if not GEMINI_API_KEY and not DEBUG and not GEMINI_OFFLINE_DEMO:
    raise ImproperlyConfigured(
        "GEMINI_API_KEY is not set. Set it to your Gemini API key, or set"
        " GEMINI_OFFLINE_DEMO=1 to serve the built-in offline demo model instead."
    )
# A Live API model id; sessions_app.live.models knows what each current model can do
# (`manage.py check` warns about an id it does not know).
GEMINI_MODEL = env.str("GEMINI_MODEL", default="gemini-3.8-live")
# Tokens per screen frame on models that take it: LOW (about 66), MEDIUM (256) or HIGH;
# empty: not sent, the service's default (about 258).
GEMINI_MEDIA_RESOLUTION = env.str("GEMINI_MEDIA_RESOLUTION", default="MEDIUM").upper()
if GEMINI_MEDIA_RESOLUTION not in ("LOW", "MEDIUM", "HIGH", ""):
    raise ImproperlyConfigured("GEMINI_MEDIA_RESOLUTION must be LOW, MEDIUM, HIGH or empty.")
GEMINI_API_VERSION = env.str("GEMINI_API_VERSION", default="v1beta")
GEMINI_API_BASE_URL = env.str("GEMINI_API_BASE_URL", default="")
GEMINI_CA_BUNDLE = env.str("GEMINI_CA_BUNDLE", default="")
# USD per million tokens per model, as JSON (sessions_app.prices); empty: the public price
# list. Checked by `manage.py check` (sessions_app.E004), not here.
GEMINI_PRICES = env.str("GEMINI_PRICES", default="")
GEMINI_SYSTEM_INSTRUCTION = env.str(
    "GEMINI_SYSTEM_INSTRUCTION",
    default=(
        "You are a helpful assistant who can see the user's shared screen and hear them. "
        "Answer briefly and concretely, referring to what is on the screen when it helps."
    ),
)
GEMINI_VOICES = env.list(
    "GEMINI_VOICES", default=["Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"]
)
GEMINI_DEFAULT_VOICE = env.str("GEMINI_DEFAULT_VOICE", default="Puck")
# The languages the model may be asked to speak (speech_config.language_code, BCP 47 codes
# of the Live API's list); the share page offers them and defaults to the page's language
# (sessions_app.languages). Native-audio models pick the language themselves and ignore it.
GEMINI_SPEECH_LANGUAGES = env.list("GEMINI_SPEECH_LANGUAGES", default=["en-US", "cmn-CN"])
GEMINI_DEFAULT_SPEECH_LANGUAGE = env.str("GEMINI_DEFAULT_SPEECH_LANGUAGE", default="en-US")
GEMINI_CONNECT_TIMEOUT_S = env.float("GEMINI_CONNECT_TIMEOUT_S", default=15.0)
# permessage-deflate on the model connection. Off: media goes up as base64 JSON, which
# deflate shrinks by about a fifth at a high CPU cost per message (see docs/benchmarks.md).
GEMINI_WS_COMPRESSION = env.bool("GEMINI_WS_COMPRESSION", default=False)
# Sliding-window context compression lifts the ~2 min audio+video session limit. Token
# thresholds left empty use the service's defaults.
GEMINI_CONTEXT_COMPRESSION = env.bool("GEMINI_CONTEXT_COMPRESSION", default=True)
GEMINI_COMPRESSION_TRIGGER_TOKENS = env.int("GEMINI_COMPRESSION_TRIGGER_TOKENS", default=None)
GEMINI_COMPRESSION_TARGET_TOKENS = env.int("GEMINI_COMPRESSION_TARGET_TOKENS", default=None)
# Resuming after an unexpected upstream close: the waits before each attempt, in seconds.
GEMINI_RECONNECT_DELAYS_S = [
    float(delay)
    for delay in env.list("GEMINI_RECONNECT_DELAYS_S", default=["0.25", "0.5", "1", "2", "4"])
]
# After goAway, switch connections at once when less than this many seconds are left.
GEMINI_SWITCH_MARGIN_S = env.float("GEMINI_SWITCH_MARGIN_S", default=1.5)

# --- Session limits ------------------------------------------------------------------------
# 0 turns a limit off.
SHARE_MAX_SESSION_S = env.float("SHARE_MAX_SESSION_S", default=2 * 3600)
SHARE_IDLE_TIMEOUT_S = env.float("SHARE_IDLE_TIMEOUT_S", default=300)
SHARE_MAX_SESSIONS_PER_USER = env.int("SHARE_MAX_SESSIONS_PER_USER", default=2)
SHARE_MAX_SESSIONS_PER_WORKER = env.int("SHARE_MAX_SESSIONS_PER_WORKER", default=200)
# Every live session stamps its row this often; an active row not stamped for
# SHARE_STALE_AFTER_S belongs to a worker that died and is swept to "interrupted".
SHARE_HEARTBEAT_S = env.float("SHARE_HEARTBEAT_S", default=15)
SHARE_STALE_AFTER_S = env.float("SHARE_STALE_AFTER_S", default=60)
# While the database is unreachable a live session goes on and its transcript lines wait
# in memory; past SHARE_UNSAVED_LINES_MAX waiting lines the session ends as
# storage_unavailable (close 4503) rather than drop any. The lines and the end of a
# finished session are retried for SHARE_STORAGE_RETRY_S seconds, then logged as lost.
SHARE_UNSAVED_LINES_MAX = env.int("SHARE_UNSAVED_LINES_MAX", default=2000)
SHARE_STORAGE_RETRY_S = env.float("SHARE_STORAGE_RETRY_S", default=600)
# Tokens one user may spend a day (since midnight in DJANGO_TIME_ZONE), counted from the
# database across every worker; staff may give one user another figure in the admin. Past
# it a start is refused, and a live session is warned at 90% and ended at 100%. 0: no limit.
SHARE_DAILY_TOKENS_PER_USER = env.int("SHARE_DAILY_TOKENS_PER_USER", default=0)
if SHARE_DAILY_TOKENS_PER_USER < 0:
    raise ImproperlyConfigured("SHARE_DAILY_TOKENS_PER_USER must be 0 (no limit) or more.")

# --- Metrics ---------------------------------------------------------------------------------
# Each worker serves Prometheus metrics at /metrics to a scraper sending
# "Authorization: Bearer <METRICS_TOKEN>" (assistant_site/metrics.py). Unset: /metrics is
# 404 and nothing is counted.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Retention -----------------------------------------------------------------------------
# `manage.py purge_sessions` deletes sessions (transcripts and notes with them) that started
# more than this many days ago. 0 keeps everything.
SESSION_RETENTION_DAYS = env.int("SESSION_RETENTION_DAYS", default=90)

# --- Browser protocol ----------------------------------------------------------------------
# Largest binary or text WebSocket message accepted from a browser. Daphne itself refuses
# anything over 1 MiB by closing the socket; below that we answer with an error and go on.
SHARE_MAX_MESSAGE_BYTES = env.int("SHARE_MAX_MESSAGE_BYTES", default=768 * 1024)
SHARE_MAX_TEXT_CHARS = env.int("SHARE_MAX_TEXT_CHARS", default=4000)
# Rate limits per connection. Past a limit messages are dropped (with one warning); a
# flood that goes on for SHARE_FLOOD_CLOSE_S closes the socket with 4429.
SHARE_AUDIO_RATE_FACTOR = env.float("SHARE_AUDIO_RATE_FACTOR", default=2.0)  # x real time
SHARE_MAX_FRAMES_PER_S = env.float("SHARE_MAX_FRAMES_PER_S", default=4.0)
SHARE_MAX_TEXTS_PER_MIN = env.int("SHARE_MAX_TEXTS_PER_MIN", default=30)
SHARE_FLOOD_CLOSE_S = env.float("SHARE_FLOOD_CLOSE_S", default=3.0)
# A browser speaking the protocol never sends a malformed message; more than this many in a
# minute end the session (protocol_error) and close the socket with 4400. 0: never.
SHARE_MAX_MALFORMED_PER_MIN = env.int("SHARE_MAX_MALFORMED_PER_MIN", default=30)
# Model speech to a browser: at most SHARE_DOWNSTREAM_WINDOW_S seconds of it unacknowledged
# by the page (its `ack` messages), at most SHARE_DOWNSTREAM_BUFFER_S more waiting in the
# worker; past that the oldest waiting speech is dropped (counted as speech_dropped_s).
SHARE_DOWNSTREAM_WINDOW_S = env.float("SHARE_DOWNSTREAM_WINDOW_S", default=5.0)
SHARE_DOWNSTREAM_BUFFER_S = env.float("SHARE_DOWNSTREAM_BUFFER_S", default=30.0)

# --- Screen capture in the page --------------------------------------------------------------
SHARE_FRAME_MAX_SIDE = env.int("SHARE_FRAME_MAX_SIDE", default=1024)  # px, long side
SHARE_FRAME_QUALITY = env.float("SHARE_FRAME_QUALITY", default=0.8)  # JPEG quality 0..1
SHARE_FRAME_RATE = env.float("SHARE_FRAME_RATE", default=1.0)  # frames/s, 0.2 to 2
SHARE_KEYFRAME_S = env.float("SHARE_KEYFRAME_S", default=10.0)  # a static screen is resent
# ...this often while someone speaks (the user, or the model), and this often while nobody
# does: a frame goes out at once when the user starts to speak or types anyway.
SHARE_IDLE_KEYFRAME_S = env.float("SHARE_IDLE_KEYFRAME_S", default=60.0)
SHARE_CHANGE_THRESHOLD = env.float("SHARE_CHANGE_THRESHOLD", default=0.01)  # changed share
