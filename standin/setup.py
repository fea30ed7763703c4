"""Setup validation: the model a setup names and what its profile lets the setup ask for.

A retired or unknown model closes with 1008 (``models/<id> is not found for API version
<version>, or is not supported for bidiGenerateContent.``, the version taken from the
request path); a TEXT response modality with 1007 ``Cannot extract voices from a
non-audio request.``; any other setting the model refuses with 1007 and a short reason
naming the field. Keys arrive camelCased (:func:`standin.records.camelize`).

What the setup means for billing (:mod:`standin.billing`) is read here too: the tokens of
the system instruction and the sliding window of ``contextWindowCompression``
(``triggerTokens`` defaults to 80% of the model's context window, ``slidingWindow.
targetTokens`` to half the trigger).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from standin.billing import TRIGGER_SHARE, Window, text_tokens
from standin.profiles import PROFILES, RETIRED, TURN_COVERAGES, ModelProfile
from standin.protocol import (
    NO_VOICES_REASON,
    POLICY_VIOLATION,
    InvalidInput,
    Refusal,
    as_list,
    as_object,
    not_found_reason,
)

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v1beta"
THINKING_LEVELS = frozenset({"LOW", "MEDIUM", "HIGH"})
MEDIA_RESOLUTIONS = frozenset(
    {"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
     "MEDIA_RESOLUTION_HIGH"}
)  # fmt: skip
BEHAVIOURS = frozenset({"BLOCKING", "NON_BLOCKING"})
_VERSION_RE = re.compile(r"\.generativelanguage\.([\w.-]+?)\.GenerativeService\.")


@dataclass(frozen=True)
class SessionConfig:
    """What an accepted setup asked for, as the synthetic model uses it."""

    profile: ModelProfile
    turn_coverage: str
    media_resolution: str | None = None
    thinking_level: str | None = None
    transcribe_input: bool = False
    transcribe_output: bool = False
    resumable: bool = False
    manual_activity: bool = False  # automatic activity detection disabled: activityStart/End
    behaviours: dict[str, str] = field(default_factory=dict)  # declared function -> behaviour
    # speechConfig.languageCode: taken, and ignored as native-audio models do (they choose
    # the language they hear); kept so that a test can see what the setup asked for.
    speech_language: str | None = None
    system_tokens: int = 0  # the system instruction's text tokens, billed with every turn
    window: Window | None = None  # contextWindowCompression's sliding window, if asked for

    def behaviour_of(self, function: str) -> str:
        """BLOCKING or NON_BLOCKING: the declaration's ``behavior``, else the model's default."""
        return self.behaviours.get(function, self.profile.default_behaviour)


def api_version(path: str) -> str:
    """The API version of a BidiGenerateContent request path (``v1beta``...)."""
    found = _VERSION_RE.search(urlsplit(path).path)
    return found[1] if found else DEFAULT_API_VERSION


def resumption_handle(setup: dict[str, Any]) -> str | None:
    """The handle a setup asks to resume (None: a new session)."""
    resumption = setup.get("sessionResumption")
    if resumption is None:
        return None
    if not isinstance(resumption, dict):
        raise InvalidInput("setup.sessionResumption must be an object.")
    handle = resumption.get("handle")
    if handle is not None and not isinstance(handle, str):
        raise InvalidInput("setup.sessionResumption.handle must be a string.")
    return handle


def model_profile(setup: dict[str, Any], path: str) -> ModelProfile:
    """The profile of the model ``setup`` names; a Refusal (1008) for any other id."""
    model = setup.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("setup.model must name a model.")
    model_id = model.removeprefix("models/")
    profile = PROFILES.get(model_id)
    if profile is None:
        state = "retired" if model_id in RETIRED else "unknown"
        logger.warning("Setup names the %s model %r", state, model_id)
        raise Refusal(POLICY_VIOLATION, not_found_reason(model_id, api_version(path)))
    return profile


def read_config(setup: dict[str, Any], profile: ModelProfile) -> SessionConfig:
    """The session configuration of ``setup``; InvalidInput for what ``profile`` refuses."""
    config = as_object(setup.get("generationConfig"), "setup.generationConfig")
    modalities = [str(item).upper() for item in config.get("responseModalities") or []]
    if any(modality != "AUDIO" for modality in modalities):
        raise InvalidInput(NO_VOICES_REASON)
    for where in (setup, config):
        if "enableAffectiveDialog" in where and not profile.affective_dialog:
            raise InvalidInput(f"enable_affective_dialog is not supported for {profile.name}.")
    proactivity = as_object(setup.get("proactivity"), "setup.proactivity")
    if proactivity.get("proactiveAudio") is False and profile.proactive_audio_always_on:
        raise InvalidInput(f"proactivity.proactive_audio cannot be disabled for {profile.name}.")
    realtime = as_object(setup.get("realtimeInputConfig"), "setup.realtimeInputConfig")
    coverage = _enum(realtime.get("turnCoverage"), TURN_COVERAGES, "turn_coverage")
    detection = as_object(
        realtime.get("automaticActivityDetection"),
        "setup.realtimeInputConfig.automaticActivityDetection",
    )
    return SessionConfig(
        profile=profile,
        turn_coverage=coverage or profile.default_turn_coverage,
        media_resolution=_media_resolution(config, profile),
        thinking_level=_thinking_level(config, profile),
        transcribe_input="inputAudioTranscription" in setup,
        transcribe_output="outputAudioTranscription" in setup,
        resumable="sessionResumption" in setup,
        manual_activity=detection.get("disabled") is True,
        behaviours=_declared_behaviours(setup, profile),
        speech_language=_speech_language(config),
        system_tokens=_system_tokens(setup.get("systemInstruction")),
        window=_window(setup, profile),
    )


def _system_tokens(instruction: Any) -> int:
    """The text tokens of ``setup.systemInstruction`` (a Content, or a plain string)."""
    if isinstance(instruction, str):
        return text_tokens(instruction)
    parts = instruction.get("parts") if isinstance(instruction, dict) else None
    if not isinstance(parts, list):
        return 0
    texts = [part.get("text") for part in parts if isinstance(part, dict)]
    return sum(text_tokens(text) for text in texts if isinstance(text, str))


def _window(setup: dict[str, Any], profile: ModelProfile) -> Window | None:
    """The sliding window ``setup.contextWindowCompression`` asks for (None: no compression)."""
    if "contextWindowCompression" not in setup:
        return None
    compression = as_object(setup["contextWindowCompression"], "setup.contextWindowCompression")
    sliding = as_object(compression.get("slidingWindow"), "contextWindowCompression.slidingWindow")
    default = int(profile.context_window_tokens * TRIGGER_SHARE)
    trigger = _token_count(compression.get("triggerTokens"), default, "trigger_tokens")
    target = _token_count(sliding.get("targetTokens"), trigger // 2, "target_tokens")
    return Window(trigger_tokens=trigger, target_tokens=target)


def _token_count(value: Any, default: int, name: str) -> int:
    """A token count (an int64: a JSON number or string); ``default`` if absent."""
    if value is None:
        return default
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if isinstance(value, bool) or count < 0:
        raise InvalidInput(f"Invalid value for {name}: {str(value)[:40]!r}.")
    return count


def _speech_language(config: dict[str, Any]) -> str | None:
    """``generationConfig.speechConfig.languageCode``: a string if present."""
    speech = as_object(config.get("speechConfig"), "generationConfig.speechConfig")
    code = speech.get("languageCode")
    if code is not None and not isinstance(code, str):
        raise InvalidInput("speech_config.language_code must be a string.")
    return code


def _media_resolution(config: dict[str, Any], profile: ModelProfile) -> str | None:
    """``generationConfig.mediaResolution`` if the model takes it."""
    if "mediaResolution" in config and not profile.media_resolution:
        raise InvalidInput(f"media_resolution is not supported for {profile.name}.")
    return _enum(config.get("mediaResolution"), MEDIA_RESOLUTIONS, "media_resolution")


def _thinking_level(config: dict[str, Any], profile: ModelProfile) -> str | None:
    """``thinkingConfig.thinkingLevel``: LOW, MEDIUM or HIGH, on a thinking model only."""
    thinking = as_object(config.get("thinkingConfig"), "generationConfig.thinkingConfig")
    if "thinkingLevel" not in thinking:
        return None
    if not profile.thinking:
        raise InvalidInput(f"thinking_config.thinking_level is not supported for {profile.name}.")
    level = str(thinking["thinkingLevel"]).upper()
    if level not in THINKING_LEVELS:
        raise InvalidInput(f"thinking_level must be LOW, MEDIUM or HIGH for {profile.name}.")
    return level


def _declared_behaviours(setup: dict[str, Any], profile: ModelProfile) -> dict[str, str]:
    """Function name -> declared ``behavior``, each one the model accepts."""
    declared: dict[str, str] = {}
    for tool in as_list(setup.get("tools") or [], "setup.tools"):
        functions = as_object(tool, "setup.tools[]").get("functionDeclarations") or []
        for function in as_list(functions, "tools.functionDeclarations"):
            function = as_object(function, "tools.functionDeclarations[]")
            behaviour = _enum(function.get("behavior"), BEHAVIOURS, "function behavior")
            if behaviour is None:
                continue
            if not profile.accepts_behaviour(behaviour):
                raise InvalidInput(
                    f"function_declarations.behavior {behaviour} is not supported for"
                    f" {profile.name}."
                )
            declared[str(function.get("name"))] = behaviour
    return declared


def _enum(value: Any, allowed: frozenset[str], name: str) -> str | None:
    """An enum value by name (None for absent or ``*_UNSPECIFIED``); InvalidInput if unknown."""
    if value is None:
        return None
    text = str(value).upper()
    if text.endswith("UNSPECIFIED"):
        return None
    if text not in allowed:
        raise InvalidInput(f"Invalid value for {name}: {str(value)[:40]!r}.")
    return text
