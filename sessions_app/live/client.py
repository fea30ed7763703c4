"""A LiveConfig -> a google-genai client and the Live session configuration.

The browser chooses only the reply mode and the voice (from an allow-list); the model,
system instruction and everything else come from server settings (live.config).

Every Live model answers in audio only (asking for TEXT closes the setup with 1007), so
both modes request AUDIO with output transcription; in text mode the relay shows the
transcription and drops the audio. What else the setup says depends on the model
(sessions_app.live.models): tool behaviour, media resolution.
"""

import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from google import genai
from google.genai import types

from sessions_app.live.config import FunctionSpec, LiveConfig
from sessions_app.live.models import ModelInfo, ToolBehaviour
from sessions_app.live.relay import Resilience


@dataclass(frozen=True)
class Endpoint:
    """Where and how the relay reaches Gemini Live."""

    api_key: str
    api_version: str
    base_url: str | None = None
    ca_bundle: str | None = None
    offline_demo: bool = False
    ws_compression: bool = False


def endpoint_for(config: LiveConfig) -> Endpoint:
    """The configured endpoint; without an API key, the built-in offline stand-in."""
    if not config.offline_demo:
        return Endpoint(
            api_key=config.api_key,
            api_version=config.api_version,
            base_url=config.base_url,
            ca_bundle=config.ca_bundle,
            ws_compression=config.ws_compression,
        )
    try:
        from sessions_app.live.offline import offline_standin
    except ImportError as exc:  # the production image does not ship the stand-in
        raise ImproperlyConfigured(
            "GEMINI_API_KEY is not set and the offline demo model (the standin package)"
            f" is not installed: {exc}"
        ) from exc
    standin = offline_standin()
    return Endpoint(
        api_key="offline-demo",
        api_version=config.api_version,
        base_url=standin.base_url,
        ca_bundle=str(standin.ca_path),
        offline_demo=True,
        ws_compression=config.ws_compression,
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
    if not endpoint.ws_compression:
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


# What a turn includes: the user's speech and every frame sent, so that the model answers
# about the screen as it is even when the frames came while nobody spoke. The page sends
# frames only when the screen changes (and a slow keyframe), which keeps that affordable.
TURN_COVERAGE = types.TurnCoverage.TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO


def build_connect_config(
    config: LiveConfig,
    *,
    voice: str,
    model: ModelInfo,
    functions: Sequence[FunctionSpec] = (),
    push_to_talk: bool = False,
    language: str = "",
) -> types.LiveConnectConfig:
    """The LiveConnectConfig for one session, offering ``functions`` to the model.

    With ``push_to_talk`` the service's automatic activity detection is off: the relay
    sends activity start and end as the user holds and releases the talk button.
    ``language`` (a Live API code such as ``cmn-CN``) goes as speech_config.language_code;
    empty leaves the choice to the model (native-audio models choose for themselves).
    """
    connect = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=types.Content(
            role="system", parts=[types.Part(text=config.system_instruction)]
        ),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        speech_config=speech_config(voice, language),
        realtime_input_config=types.RealtimeInputConfig(
            turn_coverage=TURN_COVERAGE,
            automatic_activity_detection=(
                types.AutomaticActivityDetection(disabled=True) if push_to_talk else None
            ),
        ),
        session_resumption=types.SessionResumptionConfig(),
    )
    behaviour = (
        types.Behavior.NON_BLOCKING if model.tool_behaviour is ToolBehaviour.NON_BLOCKING else None
    )
    declarations = [function_declaration(spec, behaviour) for spec in functions]
    if declarations:
        connect.tools = [types.Tool(function_declarations=declarations)]
    if model.media_resolution and config.media_resolution:  # empty: the service's default
        connect.media_resolution = types.MediaResolution(
            f"MEDIA_RESOLUTION_{config.media_resolution}"
        )
    if config.context_compression:
        connect.context_window_compression = types.ContextWindowCompressionConfig(
            trigger_tokens=config.compression_trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=config.compression_target_tokens),
        )
    return connect


def speech_config(voice: str, language: str = "") -> types.SpeechConfig:
    """The prebuilt ``voice``, and the ``language`` code if one is asked for."""
    return types.SpeechConfig(
        voice_config=types.VoiceConfig(
            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice)
        ),
        language_code=language or None,
    )


def function_declaration(
    spec: FunctionSpec, behaviour: types.Behavior | None = None
) -> types.FunctionDeclaration:
    """The SDK's declaration of one function; ``behaviour`` None leaves the model's default."""
    return types.FunctionDeclaration(
        name=spec.name,
        description=spec.description,
        parameters=types.Schema.model_validate(dict(spec.parameters)),
        behavior=behaviour,
    )


def resilience_for(config: LiveConfig) -> Resilience:
    """How relays resume."""
    return Resilience(
        reconnect_delays=config.reconnect_delays_s, switch_margin_s=config.switch_margin_s
    )
