"""What each user spent: sessions, minutes, tokens and estimated cost over a date range."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from sessions_app.models import LiveSession


@dataclass(frozen=True)
class UserUsage:
    """One user's totals over a range of days."""

    user_id: int
    username: str
    sessions: int
    seconds: float
    prompt_tokens: int
    response_tokens: int
    total_tokens: int
    cost_usd: Decimal  # the sessions' estimated costs; a session without a price adds 0
    unpriced: int = 0  # sessions whose model had no price in the table

    @property
    def minutes(self) -> float:
        """Session time in minutes."""
        return self.seconds / 60


def usage_by_user(*, start: datetime, end: datetime) -> list[UserUsage]:
    """Totals per user of the sessions started in ``[start, end)``, the biggest spender first.

    A session still live counts until now.
    """
    now = timezone.now()
    length = ExpressionWrapper(
        Coalesce(F("ended_at"), Value(now)) - F("started_at"), output_field=DurationField()
    )
    rows = (
        LiveSession.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("user_id")
        .annotate(
            sessions=Count("pk"),
            time=Sum(length),
            prompt=Sum("prompt_tokens"),
            response=Sum("response_tokens"),
            total=Sum("total_tokens"),
            cost=Sum("cost_usd"),
            unpriced=Count("pk", filter=Q(cost_usd__isnull=True)),
        )
        .order_by("-total", "user_id")
    )
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[row["user_id"] for row in rows])
        .values_list("pk", get_user_model().USERNAME_FIELD)
    )
    return [
        UserUsage(
            user_id=row["user_id"],
            username=names.get(row["user_id"], "?"),
            sessions=row["sessions"],
            seconds=max((row["time"] or timedelta()).total_seconds(), 0.0),
            prompt_tokens=row["prompt"] or 0,
            response_tokens=row["response"] or 0,
            total_tokens=row["total"] or 0,
            cost_usd=row["cost"] or Decimal(0),
            unpriced=row["unpriced"],
        )
        for row in rows
    ]


def totals(rows: list[UserUsage]) -> UserUsage:
    """Everyone's totals, as one row."""
    return UserUsage(
        user_id=0,
        username="All users",
        sessions=sum(row.sessions for row in rows),
        seconds=sum(row.seconds for row in rows),
        prompt_tokens=sum(row.prompt_tokens for row in rows),
        response_tokens=sum(row.response_tokens for row in rows),
        total_tokens=sum(row.total_tokens for row in rows),
        cost_usd=sum((row.cost_usd for row in rows), Decimal(0)),
        unpriced=sum(row.unpriced for row in rows),
    )
