"""The Live models the stand-in serves, with what each accepts and how it behaves.

The ids and capabilities are today's (late 2026, ``/work/shared/design/GEMINI_LIVE.md``):
a setup naming any other id, a retired one included, is refused with 1008 as the real
service refuses it. :mod:`standin.setup` checks a setup against its model's profile.
"""

from __future__ import annotations

from dataclasses import dataclass

# ModelProfile.tool_behaviour values.
NON_BLOCKING = "NON_BLOCKING"  # non-blocking unless a declaration says BLOCKING
BLOCKING = "BLOCKING"  # blocking unless a declaration says NON_BLOCKING
NON_BLOCKING_ONLY = "NON_BLOCKING_ONLY"
BLOCKING_ONLY = "BLOCKING_ONLY"

# types.TurnCoverage names.
ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"
ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"
AUDIO_ACTIVITY_AND_ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"
TURN_COVERAGES = frozenset({ONLY_ACTIVITY, ALL_INPUT, AUDIO_ACTIVITY_AND_ALL_VIDEO})

CONTEXT_WINDOW_TOKENS = 128_000  # every Live model's today (ai.google.dev, Live API limits)


@dataclass(frozen=True)
class ModelProfile:
    """What one Live model id accepts in a setup and how its synthetic model behaves.

    ``tool_behaviour``: ``NON_BLOCKING`` or ``BLOCKING`` (the default of a declaration
    without ``behavior``, the other one accepted too), ``NON_BLOCKING_ONLY`` or
    ``BLOCKING_ONLY`` (a declaration asking for the other one is refused).
    ``default_turn_coverage`` is a ``TurnCoverage`` name. ``thinking``: accepts
    ``thinkingConfig.thinkingLevel`` (and reports thoughts tokens); ``interaction_status``:
    every turnComplete carries ``interactionStatus``; ``media_resolution``: accepts
    ``generationConfig.mediaResolution``. ``context_window_tokens``: the model's context
    window, whose 80% is the default trigger of ``contextWindowCompression``.
    """

    id: str
    tool_behaviour: str
    default_turn_coverage: str
    thinking: bool
    proactive_audio_always_on: bool
    affective_dialog: bool
    interaction_status: bool
    media_resolution: bool
    context_window_tokens: int = CONTEXT_WINDOW_TOKENS

    @property
    def name(self) -> str:
        """The resource name a setup uses: ``models/<id>``."""
        return f"models/{self.id}"

    @property
    def default_behaviour(self) -> str:
        """The behaviour of a function declared without ``behavior``."""
        return BLOCKING if self.tool_behaviour in (BLOCKING, BLOCKING_ONLY) else NON_BLOCKING

    def accepts_behaviour(self, behaviour: str) -> bool:
        """Whether a function may be declared with ``behaviour`` (BLOCKING or NON_BLOCKING)."""
        if self.tool_behaviour == NON_BLOCKING_ONLY:
            return behaviour == NON_BLOCKING
        if self.tool_behaviour == BLOCKING_ONLY:
            return behaviour == BLOCKING
        return True


DEFAULT_MODEL = "gemini-3.8-live"

PROFILES: dict[str, ModelProfile] = {
    profile.id: profile
    for profile in (
        ModelProfile(
            id=DEFAULT_MODEL,
            tool_behaviour=NON_BLOCKING,
            default_turn_coverage=AUDIO_ACTIVITY_AND_ALL_VIDEO,
            thinking=False,
            proactive_audio_always_on=True,
            affective_dialog=False,
            interaction_status=True,
            media_resolution=True,
        ),
        ModelProfile(
            id="gemini-3.8-live-extended-thinking",
            tool_behaviour=NON_BLOCKING_ONLY,
            default_turn_coverage=AUDIO_ACTIVITY_AND_ALL_VIDEO,
            thinking=True,
            proactive_audio_always_on=True,
            affective_dialog=False,
            interaction_status=True,
            media_resolution=True,
        ),
        ModelProfile(
            id="gemini-2.5-flash-native-audio-preview-12-2025",
            tool_behaviour=BLOCKING,
            default_turn_coverage=ONLY_ACTIVITY,
            thinking=False,
            proactive_audio_always_on=False,
            affective_dialog=True,
            interaction_status=False,
            media_resolution=True,
        ),
        ModelProfile(
            id="gemini-3.1-flash-live-preview",
            tool_behaviour=BLOCKING_ONLY,
            default_turn_coverage=ONLY_ACTIVITY,
            thinking=False,
            proactive_audio_always_on=False,
            affective_dialog=True,
            interaction_status=False,
            media_resolution=False,
        ),
    )
}

RETIRED: frozenset[str] = frozenset(
    {
        "gemini-2.0-flash-live-001",
        "gemini-live-2.5-flash-preview",
        "gemini-2.5-flash-native-audio-preview-09-2025",
    }
)
