"""The Live configuration, read from settings once per session into frozen data.

Nothing else in ``sessions_app.live`` reads settings: the relay and the client builders
take a :class:`LiveConfig`, and the functions the model may call come in as
:class:`FunctionSpec` data (their handlers stay with the caller).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class FunctionSpec:
    """One function offered to the model, as data.

    ``parameters`` is a schema in the Live API's own form, with ``types.Schema`` field
    names: ``{"type": "OBJECT", "properties": {...}, "required": [...]}``.
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveConfig:
    """Everything the relay needs from the deployment's settings."""

    api_key: str
    api_version: str
    base_url: str | None
    ca_bundle: str | None
    ws_compression: bool
    model: str
    system_instruction: str
    media_resolution: str  # LOW, MEDIUM, HIGH; empty: not sent (the service's default)
    context_compression: bool
    compression_trigger_tokens: int | None
    compression_target_tokens: int | None
    connect_timeout_s: float
    reconnect_delays_s: tuple[float, ...]
    switch_margin_s: float

    @property
    def offline_demo(self) -> bool:
        """Whether the built-in offline stand-in answers: there is no API key."""
        return not self.api_key

    @classmethod
    def from_settings(cls) -> "LiveConfig":
        """The GEMINI_* settings as they are now."""
        return cls(
            api_key=settings.GEMINI_API_KEY,
            api_version=settings.GEMINI_API_VERSION,
            base_url=settings.GEMINI_API_BASE_URL or None,
            ca_bundle=settings.GEMINI_CA_BUNDLE or None,
            ws_compression=settings.GEMINI_WS_COMPRESSION,
            model=settings.GEMINI_MODEL,
            system_instruction=settings.GEMINI_SYSTEM_INSTRUCTION,
            media_resolution=settings.GEMINI_MEDIA_RESOLUTION,
            context_compression=settings.GEMINI_CONTEXT_COMPRESSION,
            compression_trigger_tokens=settings.GEMINI_COMPRESSION_TRIGGER_TOKENS,
            compression_target_tokens=settings.GEMINI_COMPRESSION_TARGET_TOKENS,
            connect_timeout_s=settings.GEMINI_CONNECT_TIMEOUT_S,
            reconnect_delays_s=tuple(settings.GEMINI_RECONNECT_DELAYS_S),
            switch_margin_s=settings.GEMINI_SWITCH_MARGIN_S,
        )
