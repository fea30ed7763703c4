"""The Gemini Live models this relay knows, and what each of them accepts.

Model ids change every few months and each model accepts a slightly different setup: one
table, here, says what the relay may send to each. A model missing from the table is
still used (the service is the judge), with only the settings every Live model accepts;
``manage.py check`` warns about it (sessions_app.checks).

Sources: the Gemini API models and deprecations pages and the Live API capabilities guide,
as summarised in docs/protocol.md ("Models").
"""

from dataclasses import dataclass
from enum import StrEnum


class ToolBehaviour(StrEnum):
    """How the model runs function calls."""

    NON_BLOCKING = "NON_BLOCKING"  # the model talks on; responses carry a scheduling
    BLOCKING = "BLOCKING"  # the model waits for each response (the only kind it knows)


@dataclass(frozen=True)
class ModelInfo:
    """What one Live model accepts in its setup."""

    id: str
    tool_behaviour: ToolBehaviour
    default_turn_coverage: str  # what a turn includes when the setup does not say
    thinking: bool = False  # accepts thinking_config.thinking_level
    media_resolution: bool = True  # accepts generation_config.media_resolution
    known: bool = True  # listed in MODELS (False: an id the table does not know)


MODELS: dict[str, ModelInfo] = {
    info.id: info
    for info in (
        ModelInfo(
            "gemini-3.8-live",
            ToolBehaviour.NON_BLOCKING,
            "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
        ),
        ModelInfo(
            "gemini-3.8-live-extended-thinking",
            ToolBehaviour.NON_BLOCKING,
            "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
            thinking=True,
        ),
        ModelInfo(
            "gemini-2.5-flash-native-audio-preview-12-2025",
            ToolBehaviour.NON_BLOCKING,
            "TURN_INCLUDES_ONLY_ACTIVITY",
        ),
        ModelInfo(
            "gemini-3.1-flash-live-preview",
            ToolBehaviour.BLOCKING,
            "TURN_INCLUDES_ONLY_ACTIVITY",
            media_resolution=False,
        ),
    )
}

# Shut down by the service: a setup naming one is refused with 1008.
RETIRED = frozenset(
    {
        "gemini-2.0-flash-live-001",
        "gemini-live-2.5-flash-preview",
        "gemini-2.5-flash-native-audio-preview-09-2025",
    }
)

DEFAULT_MODEL = "gemini-3.8-live"


def model_info(model_id: str) -> ModelInfo:
    """The table's entry for ``model_id``; an unknown id gets the settings every model takes."""
    found = MODELS.get(model_id.removeprefix("models/"))
    if found is not None:
        return found
    return ModelInfo(
        model_id,
        ToolBehaviour.BLOCKING,
        "TURN_INCLUDES_ONLY_ACTIVITY",
        media_resolution=False,
        known=False,
    )
