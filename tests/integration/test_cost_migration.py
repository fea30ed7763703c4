"""Migration 0007 estimates the cost of the sessions stored before costs were."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("sessions_app", "0006_storage_unavailable_speech_dropped")]
AFTER = [("sessions_app", "0007_cost_and_daily_budgets")]


def migrate(target: list[tuple[str, str]]) -> Any:
    """Migrate the test database to ``target``; the app registry as it is there."""
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    executor.loader.build_graph()
    return executor.loader.project_state(target).apps


@pytest.fixture
def back_to_the_latest() -> Iterator[None]:
    """Whatever the test does, the database ends at the latest migrations."""
    yield
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.usefixtures("back_to_the_latest")
def test_past_sessions_are_priced_at_the_table_and_unknown_models_are_not(user: Any) -> None:
    old = migrate(BEFORE)
    sessions = old.get_model("sessions_app", "LiveSession")
    fields = {"user_id": user.pk, "response_modality": "AUDIO", "status": "ended"}
    priced = sessions.objects.create(
        model="models/gemini-3.8-live", prompt_tokens=1_000_000, response_tokens=100_000,
        prompt_tokens_by_modality={"AUDIO": 1_000_000},
        response_tokens_by_modality={"AUDIO": 100_000}, **fields,
    )  # fmt: skip
    unknown = sessions.objects.create(model="gemini-unknown", prompt_tokens=5, **fields)
    new = migrate(AFTER)
    stored = new.get_model("sessions_app", "LiveSession").objects
    # gemini-3.8-live's default rates: audio $3.00 in and $12.00 out per million
    assert stored.get(pk=priced.pk).cost_usd == Decimal("3.000000") + Decimal("1.200000")
    assert stored.get(pk=unknown.pk).cost_usd is None
