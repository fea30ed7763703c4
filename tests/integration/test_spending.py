"""What a session costs and the user's daily token budget, through the whole ASGI stack.

The real google-genai SDK talks to the stand-in, whose usageMetadata is the bill. The page
is told the session's estimated cost with every usage report, and the row stores it; the
budget refuses a start past it, warns a live session once at 90% and ends it at 100%.
The same across two worker processes: tests/integration/test_budget_workers.py.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from sessions_app import services
from sessions_app.models import LiveSession, TranscriptEntry, UserBudget
from standin import StandIn
from tests.conftest import Browser
from tests.records import priced

pytestmark = pytest.mark.django_db(transaction=True)

PER_TURN = 500  # the stand-in's fixed bill of a turn in the budget tests: 400 in, 100 out


def bill_each_turn(standin: StandIn, prompt: int = 400, response: int = 100) -> None:
    """Make every turn cost a fixed number of tokens (the stand-in's fixed mode)."""
    standin.behaviour.prompt_tokens_per_turn = prompt
    standin.behaviour.response_tokens_per_turn = response


@database_sync_to_async
def stored(session_id: str) -> LiveSession:
    """The session's row as stored."""
    return LiveSession.objects.get(pk=session_id)


@database_sync_to_async
def lines_of(session_id: str) -> list[tuple[str, str]]:
    """The stored transcript lines, in order, as (role, source)."""
    return list(
        TranscriptEntry.objects.filter(session_id=session_id)
        .order_by("sequence")
        .values_list("role", "source")
    )


async def test_the_page_is_told_the_cost_of_the_stored_tokens(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="audio")
    for text in ("what is on my screen?", "and now?"):
        await browser.send(type="text", text=text)
        await browser.expect("turn_complete")
        shown = await browser.expect("usage")
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    session = await stored(live["session_id"])
    assert session.total_tokens > 0
    assert session.cost_usd == priced(session) > 0
    assert shown["cost_usd"] == float(session.cost_usd)
    assert shown["total_tokens"] == session.total_tokens
    await browser.close()


async def test_a_model_without_a_price_shows_and_stores_no_cost(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    rates = dict.fromkeys(
        ("input_text", "input_audio", "input_image", "output_text", "output_audio"), 1.0
    )
    settings.GEMINI_PRICES = json.dumps({"some-other-model": rates})
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="text")
    await browser.send(type="text", text="hello")
    await browser.expect("turn_complete")
    usage = await browser.expect("usage")
    assert "cost_usd" not in usage
    assert usage["total_tokens"] > 0
    await browser.send(type="stop")
    await browser.expect("status", state="ended")
    assert (await stored(live["session_id"])).cost_usd is None
    await browser.close()


async def test_a_malformed_price_table_refuses_the_start_plainly(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.GEMINI_PRICES = '{"gemini-3.8-live": {"input_text": -1}}'
    browser = Browser(cookie)
    await browser.connect()
    await browser.send(type="start", mode="audio")
    error = await browser.expect("error")
    assert error["code"] == "internal_error"
    assert "not configured correctly" in error["message"]
    row = await database_sync_to_async(LiveSession.objects.get)()
    assert (row.status, row.end_reason) == ("failed", "internal_error")
    assert standin.connections == []  # refused before the model was reached
    await browser.close()


async def test_a_session_is_warned_at_90_percent_and_ends_at_the_budget(
    standin: StandIn, cookie: str, settings: Any
) -> None:
    settings.SHARE_DAILY_TOKENS_PER_USER = 2100  # 90% is 1890: the 4th turn warns, the 5th ends
    bill_each_turn(standin)
    browser = Browser(cookie)
    await browser.connect()
    live = await browser.start(mode="audio")
    for turn in range(1, 6):
        await browser.send(type="text", text=f"question {turn}")
        await browser.expect("turn_complete", turn=turn)
    ended = await browser.expect("status", state="ended")
    assert ended["reason"] == "budget_exhausted"
    assert "daily allowance" in ended["message"]

    warnings = [m for m in browser.messages if m["type"] == "error"]
    assert [w["code"] for w in warnings] == ["budget_warning"]
    assert "2,000 of your 2,100 tokens" in warnings[0]["message"]
    turns_before_warning = [
        m["turn"] for m in browser.messages[: browser.messages.index(warnings[0])]
        if m["type"] == "turn_complete"
    ]  # fmt: skip
    assert turns_before_warning == [1, 2, 3, 4]

    session = await stored(live["session_id"])
    assert (session.status, session.end_reason) == ("ended", "budget_exhausted")
    assert session.total_tokens == 5 * PER_TURN
    assert await lines_of(live["session_id"]) == [("user", "typed"), ("model", "speech")] * 5
    await browser.close()


async def test_a_start_past_the_budget_is_refused_until_an_admin_raises_it(
    standin: StandIn, cookie: str, user: Any, settings: Any
) -> None:
    settings.SHARE_DAILY_TOKENS_PER_USER = 1000
    bill_each_turn(standin)
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="audio")
    for turn in (1, 2):
        await browser.send(type="text", text=f"question {turn}")
        await browser.expect("turn_complete", turn=turn)
    await browser.expect("status", state="ended", reason="budget_exhausted")

    await browser.send(type="start", mode="audio")
    refused = await browser.expect("error")
    assert refused["code"] == "budget_exhausted"
    assert "daily allowance of 1,000 tokens (1,000 today)" in refused["message"]
    rows = await database_sync_to_async(
        lambda: list(LiveSession.objects.order_by("started_at").values_list("status", "end_reason"))
    )()
    assert rows == [("ended", "budget_exhausted"), ("failed", "budget_exhausted")]
    assert len(standin.connections) == 1  # the refused start never reached the model

    await database_sync_to_async(UserBudget.objects.create)(user=user, daily_tokens=5000)
    live = await browser.start(mode="audio")  # the socket stayed open; the override counts
    await browser.send(type="text", text="on the raised budget")
    await browser.expect("turn_complete", turn=1)
    assert [m["code"] for m in browser.messages if m["type"] == "error"] == ["budget_exhausted"]
    await browser.send(type="stop")
    await browser.expect("status", state="ended", reason="client_stop")
    assert (await stored(live["session_id"])).total_tokens == PER_TURN
    await browser.close()


async def test_a_budget_of_zero_is_no_limit_and_yesterday_does_not_count(
    standin: StandIn, cookie: str, user: Any, settings: Any
) -> None:
    settings.SHARE_DAILY_TOKENS_PER_USER = 600
    await database_sync_to_async(LiveSession.objects.create)(
        user=user, model="gemini-3.8-live", response_modality="AUDIO", status="ended",
        started_at=services.day_start() - timedelta(seconds=1), total_tokens=10**9,
    )  # fmt: skip
    bill_each_turn(standin)
    browser = Browser(cookie)
    await browser.connect()
    await browser.start(mode="audio")  # yesterday's billion tokens do not count today
    await browser.send(type="stop")
    await browser.expect("status", state="ended")

    await database_sync_to_async(UserBudget.objects.create)(user=user, daily_tokens=0)
    await browser.start(mode="audio")  # the user's own 0: no limit, whatever the setting
    for turn in (1, 2, 3):
        await browser.send(type="text", text=f"question {turn}")
        await browser.expect("turn_complete", turn=turn)
    await browser.send(type="stop")
    await browser.expect("status", state="ended", reason="client_stop")
    assert [m for m in browser.messages if m["type"] == "error"] == []
    await browser.close()


def test_the_day_starts_at_midnight_in_the_site_time_zone(settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"
    late_evening = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # 22:00 on the 6th in New York
    start = services.day_start(late_evening)
    assert start == datetime(2026, 12, 6, 0, 0, tzinfo=ZoneInfo("America/New_York"))
    assert start.astimezone(UTC) == datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def test_staff_raise_one_users_budget_in_the_admin(
    admin_client: Any, user: Any, other_user: Any
) -> None:
    LiveSession.objects.create(
        user=user, model="gemini-3.8-live", response_modality="AUDIO", status="ended",
        total_tokens=1234,
    )  # fmt: skip
    add = reverse("admin:sessions_app_userbudget_add")
    response = admin_client.post(add, {"user": user.pk, "daily_tokens": 50000, "note": "demo"})
    assert response.status_code == 302, response.content.decode()[:500]
    assert services.daily_token_limit(user_id=user.pk, default=1000) == 50000  # the override
    assert services.daily_token_limit(user_id=other_user.pk, default=1000) == 1000  # others
    listing = admin_client.get(reverse("admin:sessions_app_userbudget_changelist"))
    cells = listing.content.decode()
    assert "50000" in cells
    assert '<td class="field-used_today">1234</td>' in cells  # what the user spent today

    again = admin_client.post(add, {"user": user.pk, "daily_tokens": 1})  # one per user
    assert again.status_code == 200
    assert "already exists" in again.content.decode()
    negative = admin_client.post(add, {"user": other_user.pk, "daily_tokens": -5})
    assert negative.status_code == 200  # refused with the form's error, nothing stored
    assert not UserBudget.objects.filter(user=other_user).exists()
