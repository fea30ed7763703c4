"""Languages: the connection's page language, and the language the model is asked to speak.

The page's language (English or Simplified Chinese, settings.LANGUAGES) comes from the
``django_language`` cookie the switcher sets, else from Accept-Language. The share socket
has no LocaleMiddleware, so :func:`connection_language` reads the same two from the
handshake and the consumer activates it for the whole connection.

The speech language is a Live API code (BCP 47, e.g. ``en-US``, ``cmn-CN``) from
settings.GEMINI_SPEECH_LANGUAGES, sent as ``speech_config.language_code``.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.utils.translation import get_supported_language_variant
from django.utils.translation import gettext_lazy as _
from django.utils.translation.trans_real import parse_accept_lang_header

# Names of the Live API's speech languages the site knows; others show their code.
SPEECH_LANGUAGE_NAMES: Mapping[str, Any] = {
    "en-US": _("English (United States)"),
    "en-GB": _("English (United Kingdom)"),
    "cmn-CN": _("Chinese, Mandarin (China)"),
    "de-DE": _("German (Germany)"),
    "fr-FR": _("French (France)"),
    "es-US": _("Spanish (United States)"),
    "ja-JP": _("Japanese (Japan)"),
    "ko-KR": _("Korean (South Korea)"),
}

# The speech language a page language asks for by default.
PAGE_TO_SPEECH = {"en": "en-US", "zh-hans": "cmn-CN"}


def speech_language_choices() -> list[tuple[str, str]]:
    """The offered speech languages as (code, name in the active language)."""
    return [
        (code, str(SPEECH_LANGUAGE_NAMES.get(code, code)))
        for code in settings.GEMINI_SPEECH_LANGUAGES
    ]


def page_speech_language(page_language: str | None) -> str:
    """The default speech language for a page language: its own if offered, else the default."""
    allowed = settings.GEMINI_SPEECH_LANGUAGES
    code = PAGE_TO_SPEECH.get((page_language or "").lower(), "")
    return code if code in allowed else default_speech_language()


def default_speech_language() -> str:
    """The configured default speech language, or the first offered one if it is not offered."""
    allowed = settings.GEMINI_SPEECH_LANGUAGES
    default: str = settings.GEMINI_DEFAULT_SPEECH_LANGUAGE
    return default if default in allowed or not allowed else allowed[0]


def _supported(code: str) -> str | None:
    """The site language ``code`` stands for (zh-CN -> zh-hans), or None."""
    try:
        return get_supported_language_variant(code)
    except LookupError:
        return None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    """One request header of an ASGI scope, decoded; empty if absent."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def connection_language(scope: Mapping[str, Any]) -> str:
    """The site language of a WebSocket handshake: the switcher's cookie, else Accept-Language."""
    cookie = (scope.get("cookies") or {}).get(settings.LANGUAGE_COOKIE_NAME)
    if cookie and (found := _supported(cookie)):
        return found
    accept = _header(scope.get("headers") or (), b"accept-language")
    for code, _quality in parse_accept_lang_header(accept[:1000]):
        if code != "*" and (found := _supported(code)):
            return found
    return settings.LANGUAGE_CODE
