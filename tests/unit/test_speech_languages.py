"""Which language a connection speaks, and which speech language a page asks for."""

from typing import Any

from sessions_app.languages import (
    connection_language,
    default_speech_language,
    page_speech_language,
    speech_language_choices,
)


def scope(cookie: str | None = None, accept: str | None = None) -> dict[str, Any]:
    """A WebSocket handshake's scope with the language cookie and Accept-Language given."""
    headers = [(b"accept-language", accept.encode())] if accept is not None else []
    return {"cookies": {"django_language": cookie} if cookie else {}, "headers": headers}


def test_the_cookie_wins_then_the_best_accepted_site_language_then_english() -> None:
    assert connection_language(scope("zh-hans", "en-US")) == "zh-hans"
    assert connection_language(scope("en", "zh-CN")) == "en"
    assert connection_language(scope("xx", "zh-CN")) == "zh-hans"  # an unknown cookie
    assert connection_language(scope(None, "fr-FR, zh-TW;q=0.8, en;q=0.5")) == "zh-hans"
    assert connection_language(scope(None, "fr-FR, de;q=0.5")) == "en"
    assert connection_language(scope(None, "*")) == "en"
    assert connection_language(scope(None, ";;;,,q=abc")) == "en"  # nonsense is no error
    assert connection_language({}) == "en"


def test_the_page_language_picks_its_speech_language_if_offered(settings: Any) -> None:
    settings.GEMINI_SPEECH_LANGUAGES = ["en-US", "cmn-CN"]
    settings.GEMINI_DEFAULT_SPEECH_LANGUAGE = "en-US"
    assert page_speech_language("zh-hans") == "cmn-CN"
    assert page_speech_language("en") == "en-US"
    assert page_speech_language(None) == "en-US"
    settings.GEMINI_SPEECH_LANGUAGES = ["de-DE", "fr-FR"]  # neither, nor the default
    assert page_speech_language("zh-hans") == "de-DE"
    assert default_speech_language() == "de-DE"
    assert speech_language_choices() == [
        ("de-DE", "German (Germany)"),
        ("fr-FR", "French (France)"),
    ]
