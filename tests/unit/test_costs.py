"""What tokens cost: each modality at its rate of the price table, to the micro-dollar."""

from decimal import Decimal

import pytest

from sessions_app.prices import (
    DEFAULT_PRICES,
    MAX_COST_USD,
    Prices,
    TokenCounts,
    cost_usd,
    parse_prices,
)

# Round figures, so that each expected cost below is plain arithmetic on the table.
PRICES = Prices(
    input_text=1.0, input_audio=2.0, input_image=4.0, output_text=8.0, output_audio=16.0
)


def test_each_modality_is_billed_at_its_own_rate() -> None:
    tokens = TokenCounts(
        prompt=1_000_000 + 2_000_000 + 500_000,
        prompt_by_modality={"TEXT": 1_000_000, "AUDIO": 2_000_000, "IMAGE": 500_000},
        response=250_000,
        response_by_modality={"AUDIO": 250_000},
    )
    # 1 x $1 + 2 x $2 + 0.5 x $4 in, 0.25 x $16 out
    assert cost_usd(PRICES, tokens) == Decimal("11.000000")


def test_video_frames_are_images_and_thinking_is_text_out() -> None:
    tokens = TokenCounts(prompt=1_000, prompt_by_modality={"VIDEO": 1_000}, thoughts=1_000)
    assert cost_usd(PRICES, tokens) == Decimal("0.012000")  # 1000 x $4/M + 1000 x $8/M


def test_tool_use_prompt_tokens_are_input() -> None:
    tokens = TokenCounts(tool_use=1_000_000, tool_use_by_modality={"AUDIO": 1_000_000})
    assert cost_usd(PRICES, tokens) == Decimal("2.000000")


def test_tokens_the_service_did_not_itemise_are_text_in_and_audio_out() -> None:
    tokens = TokenCounts(
        prompt=3_000_000, prompt_by_modality={"AUDIO": 1_000_000}, response=1_000_000
    )
    # 1 M audio at $2, 2 M unitemised at $1; 1 M out unitemised at the audio rate, $16
    assert cost_usd(PRICES, tokens) == Decimal("20.000000")


def test_an_unknown_modality_is_billed_as_text() -> None:
    tokens = TokenCounts(prompt=1_000_000, prompt_by_modality={"OTHER": 1_000_000})
    assert cost_usd(PRICES, tokens) == Decimal("1.000000")


def test_costs_are_rounded_to_the_micro_dollar_without_float_error() -> None:
    tokens = TokenCounts(prompt=1, prompt_by_modality={"TEXT": 1})
    assert cost_usd(Prices(0.75, 3.0, 3.0, 4.5, 12.0), tokens) == Decimal("0.000001")  # 0.75e-6
    assert cost_usd(PRICES, TokenCounts()) == Decimal("0.000000")


@pytest.mark.parametrize("model", sorted(DEFAULT_PRICES))
def test_an_hour_of_audio_costs_what_the_public_list_says(model: str) -> None:
    """32 tokens a second of audio in and out: the price list's audio rates per hour."""
    second = 32 * 3600
    tokens = TokenCounts(
        prompt=second, prompt_by_modality={"AUDIO": second},
        response=second, response_by_modality={"AUDIO": second},
    )  # fmt: skip
    prices = parse_prices("")[model]
    expected = Decimal(second) * (
        Decimal(str(prices.input_audio)) + Decimal(str(prices.output_audio))
    )
    assert cost_usd(prices, tokens) == (expected / 1_000_000).quantize(Decimal("0.000001"))
    assert Decimal("1.5") < cost_usd(prices, tokens) < Decimal("2")  # $0.35 + $1.40 an hour, about


def test_an_absurd_bill_is_held_to_what_a_row_can_store() -> None:
    huge = TokenCounts(prompt=2**63 - 1, prompt_by_modality={"AUDIO": 2**63 - 1})
    assert cost_usd(Prices(1e9, 1e9, 1e9, 1e9, 1e9), huge) == MAX_COST_USD
