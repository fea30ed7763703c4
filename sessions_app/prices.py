"""The price table: USD per million tokens, per model, for what a Live session is billed.

``GEMINI_PRICES`` (JSON in the environment, empty for the default table below) maps each
model id to its five rates::

    {"gemini-3.8-live": {"input_text": 0.75, "input_audio": 3.0, "input_image": 3.0,
                         "output_text": 4.5, "output_audio": 12.0}}

A table given in the environment replaces the default one whole. It is parsed and checked
here, not in settings: a malformed table is the system check ``sessions_app.E004`` (its
id, one line and a hint in ``manage.py check --deploy``, which the release step runs),
and :func:`prices_for` raises ImproperlyConfigured, which a session that needs a price
turns into a failed start with a plain message, never a crash. A settings-time error would
stop every management command with a traceback instead, ``check`` included.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

RATES = ("input_text", "input_audio", "input_image", "output_text", "output_audio")


@dataclass(frozen=True)
class Prices:
    """One model's rates, in USD per million tokens."""

    input_text: float
    input_audio: float
    input_image: float
    output_text: float
    output_audio: float


# The date of the default table below: the README and .env.example say it too.
PRICE_LIST_DATE = "2026-12-01"

# The public Gemini Developer API price list (paid tier, ai.google.dev/gemini-api/docs/pricing),
# as read on 2026-12-01 from what the project's search corpus holds of it:
# - gemini-2.5-flash-native-audio-preview-12-2025: input $0.50 text, $3.00 audio/video
#   (images are billed as video here), output $2.00 text, $12.00 audio.
# - gemini-3.1-flash-live-preview (launched 2026-03-26): input $0.75 text, output $4.50
#   text; audio "$0.35/hour in and $1.40/hour out, matching Gemini 2.5" (about 32 tokens
#   a second: $3.00 and $12.00 per million). Its image rate was not found; the audio/video
#   rate is used, which errs high.
# - gemini-3.8-live and gemini-3.8-live-extended-thinking have no public price page in the
#   sources found. They default to the rates of gemini-3.1-flash-live-preview, the Live
#   model they succeed, so costs are estimated rather than missing; set GEMINI_PRICES once
#   the service publishes theirs.
_LIVE_3 = Prices(0.75, 3.0, 3.0, 4.5, 12.0)
DEFAULT_PRICES: dict[str, Prices] = {
    "gemini-3.8-live": _LIVE_3,
    "gemini-3.8-live-extended-thinking": _LIVE_3,
    "gemini-3.1-flash-live-preview": _LIVE_3,
    "gemini-2.5-flash-native-audio-preview-12-2025": Prices(0.5, 3.0, 3.0, 2.0, 12.0),
}


def parse_prices(raw: str) -> dict[str, Prices]:
    """The table ``raw`` (JSON) describes, or the default one for an empty string.

    Raises ValueError with a one-line reason naming the model and rate at fault.
    """
    if not raw.strip():
        return dict(DEFAULT_PRICES)
    try:
        table = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"GEMINI_PRICES is not valid JSON ({exc.msg} at {exc.pos}).") from None
    if not isinstance(table, Mapping) or not table:
        raise ValueError("GEMINI_PRICES must be a JSON object of model id -> rates.")
    return {str(model): _model_prices(str(model), rates) for model, rates in table.items()}


def _model_prices(model: str, rates: Any) -> Prices:
    """One model's rates, checked: a mapping of exactly the five, each a number >= 0."""
    if not isinstance(rates, Mapping):
        raise ValueError(f"GEMINI_PRICES[{model!r}] must be an object of the rates {RATES}.")
    missing = [name for name in RATES if name not in rates]
    unknown = sorted(str(name) for name in rates if name not in RATES)
    if missing or unknown:
        raise ValueError(
            f"GEMINI_PRICES[{model!r}] must give exactly {', '.join(RATES)}"
            f" (missing: {missing or 'none'}; unknown: {unknown or 'none'})."
        )
    for name in RATES:
        value = rates[name]
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"GEMINI_PRICES[{model!r}][{name!r}] is {value!r}: it must be a"
                " non-negative number (USD per million tokens)."
            )
    return Prices(**{name: float(rates[name]) for name in RATES})


def price_table() -> dict[str, Prices]:
    """The table in effect; ImproperlyConfigured if ``GEMINI_PRICES`` is malformed."""
    try:
        return parse_prices(getattr(settings, "GEMINI_PRICES", ""))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def prices_for(model: str) -> Prices | None:
    """The rates of ``model`` (``models/`` prefix allowed); None if the table lacks it."""
    return price_table().get(model.removeprefix("models/"))


# Which rate a modality's tokens are billed at. Frames are images (the price list bills
# video input as images). A count the service does not itemise by modality is billed as
# text in, and as audio out: every Live model answers in audio.
INPUT_RATES = {
    "TEXT": "input_text",
    "AUDIO": "input_audio",
    "IMAGE": "input_image",
    "VIDEO": "input_image",
    "DOCUMENT": "input_image",
}
OUTPUT_RATES = {"TEXT": "output_text", "AUDIO": "output_audio"}
UNITEMISED_INPUT, UNITEMISED_OUTPUT = "input_text", "output_audio"
MICRO_USD = Decimal("0.000001")
PER_MILLION = Decimal(1_000_000)
# The largest cost a session row holds (LiveSession.cost_usd, 18 digits, 6 decimals): a
# figure past it (absurd counts from a broken upstream, absurd rates) is held to it.
MAX_COST_USD = Decimal("999999999999.999999")


@dataclass(frozen=True)
class TokenCounts:
    """A session's token totals as the service reported them (summed per-turn snapshots)."""

    prompt: int = 0
    response: int = 0
    thoughts: int = 0
    tool_use: int = 0
    prompt_by_modality: Mapping[str, int] = field(default_factory=dict)
    response_by_modality: Mapping[str, int] = field(default_factory=dict)
    tool_use_by_modality: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, totals: Any) -> "TokenCounts":
        """The counts of anything holding a session's totals under the LiveSession field
        names: a session row (a migration's too) or a live session's counters."""
        return cls(
            prompt=totals.prompt_tokens,
            response=totals.response_tokens,
            thoughts=totals.thoughts_tokens,
            tool_use=totals.tool_use_prompt_tokens,
            prompt_by_modality=totals.prompt_tokens_by_modality or {},
            response_by_modality=totals.response_tokens_by_modality or {},
            tool_use_by_modality=totals.tool_use_prompt_tokens_by_modality or {},
        )


def cost_usd(prices: Prices, tokens: TokenCounts) -> Decimal:
    """What ``tokens`` cost at ``prices``, in USD to the micro-dollar (at most MAX_COST_USD).

    Prompt and tool-use prompt tokens at the input rate of their modality, response tokens
    at the output rate of theirs, thinking tokens as text out.
    """
    spent = (
        _billed(prices, tokens.prompt, tokens.prompt_by_modality, INPUT_RATES, UNITEMISED_INPUT)
        + _billed(
            prices, tokens.tool_use, tokens.tool_use_by_modality, INPUT_RATES, UNITEMISED_INPUT
        )
        + _billed(
            prices, tokens.response, tokens.response_by_modality, OUTPUT_RATES, UNITEMISED_OUTPUT
        )
        + tokens.thoughts * _rate(prices, "output_text")
    )
    return min((spent / PER_MILLION).quantize(MICRO_USD), MAX_COST_USD)


def _billed(
    prices: Prices,
    total: int,
    by_modality: Mapping[str, int],
    rates: Mapping[str, str],
    unitemised: str,
) -> Decimal:
    """USD x 1e6 of ``total`` tokens, itemised by ``by_modality`` (the rest at ``unitemised``)."""
    itemised = sum(by_modality.values())
    spent = sum(
        (count * _rate(prices, rates.get(modality, unitemised)) for modality, count in
         by_modality.items()),
        Decimal(0),
    )  # fmt: skip
    return spent + max(total - itemised, 0) * _rate(prices, unitemised)


def _rate(prices: Prices, name: str) -> Decimal:
    """One rate as an exact decimal (USD per million tokens)."""
    return Decimal(repr(getattr(prices, name)))
