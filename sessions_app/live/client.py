"""Settings -> a google-genai client and the Live session configuration.

The browser chooses only the response modality and the voice (from an allow-list); the
model, system instruction and everything else come from server settings.
"""

import functools
import ssl
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google import genai
from google.genai import types

from sessions_app.live.relay import Resilience
from sessions_app.tools import ToolRegistry
from sessions_app.tools import registry as default_tools


@dataclass(frozen=True)
class Endpoint:
    """Where and how the relay reaches Gemini Live."""

    api_key: str
    api_version: str
    base_url: str | None = None
    ca_bundle: str | None = None
    offline_demo: bool = False


def endpoint_from_settings() -> Endpoint:
    """The configured endpoint; without an API key, the built-in offline stand-in."""
    if settings.GEMINI_API_KEY:
        return Endpoint(
            api_key=settings.GEMINI_API_KEY,
            api_version=settings.GEMINI_API_VERSION,
            base_url=settings.GEMINI_API_BASE_URL or None,
            ca_bundle=settings.GEMINI_CA_BUNDLE or None,
        )
    from sessions_app.live.offline import offline_standin

    standin = offline_standin()
    return Endpoint(
        api_key="offline-demo",
        api_version=settings.GEMINI_API_VERSION,
        base_url=standin.base_url,
        ca_bundle=str(standin.ca_path),
        offline_demo=True,
    )


@functools.lru_cache(maxsize=8)
def build_client(endpoint: Endpoint) -> genai.Client:
    """A google-genai client for the endpoint (one per process and endpoint)."""
    if not endpoint.api_key:
        raise ImproperlyConfigured("GEMINI_API_KEY is empty.")
    http_options = types.HttpOptions(api_version=endpoint.api_version)
    if endpoint.base_url:
        http_options.base_url = endpoint.base_url
    # Passed on to websockets' connect() for the Live connection: deflating base64 media
    # costs more CPU than the bytes it saves are worth (GEMINI_WS_COMPRESSION).
    client_args: dict[str, object] = {}
    if not settings.GEMINI_WS_COMPRESSION:
        client_args["compression"] = None
    if endpoint.ca_bundle:
        try:
            client_args["ssl"] = ssl.create_default_context(cafile=endpoint.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ImproperlyConfigured(
                f"GEMINI_CA_BUNDLE {endpoint.ca_bundle!r} cannot be loaded: {exc}"
            ) from exc
    if client_args:
        http_options.async_client_args = client_args
    return genai.Client(api_key=endpoint.api_key, http_options=http_options)


def build_connect_config(
    *, modality: str, voice: str, tools: ToolRegistry | None = None
) -> types.LiveConnectConfig:
    """The LiveConnectConfig for one session; ``tools`` (default: every registered tool)."""
    declarations = (tools or default_tools).declarations()
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality(modality)],
        system_instruction=types.Content(
            role="system", parts=[types.Part(text=settings.GEMINI_SYSTEM_INSTRUCTION)]
        ),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(),
    )
    if declarations:
        config.tools = [types.Tool(function_declarations=declarations)]
    if settings.GEMINI_CONTEXT_COMPRESSION:
        config.context_window_compression = types.ContextWindowCompressionConfig(
            trigger_tokens=settings.GEMINI_COMPRESSION_TRIGGER_TOKENS,
            sliding_window=types.SlidingWindow(
                target_tokens=settings.GEMINI_COMPRESSION_TARGET_TOKENS
            ),
        )
    if modality == types.Modality.AUDIO.value:
        config.output_audio_transcription = types.AudioTranscriptionConfig()
        config.speech_config = types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice)
            )
        )
    return config


def resilience_from_settings() -> Resilience:
    """How relays resume, from settings."""
    return Resilience(
        reconnect_delays=tuple(settings.GEMINI_RECONNECT_DELAYS_S),
        switch_margin_s=settings.GEMINI_SWITCH_MARGIN_S,
    )
