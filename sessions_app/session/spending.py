"""What a live session spends: its token totals and cost as the page shows them, and its
share of its user's daily token budget.

The budget counts every token the user spent today, on every worker: the other sessions'
totals come from the database (each row holds its totals as of its last completed turn),
this session's own from memory. After each usage report the session is warned once at
:data:`WARN_AT` of the budget and ended at all of it (``budget_exhausted``, transcript
stored). While the database is away the last figure read is kept.
"""

import logging
import uuid
from dataclasses import dataclass
from enum import Enum

from channels.db import database_sync_to_async
from django.db import DatabaseError

from sessions_app import services
from sessions_app.outbound import Usage
from sessions_app.services import SessionCounters

logger = logging.getLogger(__name__)

WARN_AT = 0.9


def usage_message(counters: SessionCounters) -> Usage:
    """The session's totals so far, with their estimated cost, for the page."""
    cost = counters.cost_usd
    return Usage(
        prompt_tokens=counters.prompt_tokens,
        response_tokens=counters.response_tokens,
        total_tokens=counters.total_tokens,
        thoughts_tokens=counters.thoughts_tokens,
        tool_use_prompt_tokens=counters.tool_use_prompt_tokens,
        prompt_tokens_by_modality=counters.prompt_tokens_by_modality,
        response_tokens_by_modality=counters.response_tokens_by_modality,
        tool_use_prompt_tokens_by_modality=counters.tool_use_prompt_tokens_by_modality,
        cost_usd=None if cost is None else float(cost),
    )


class Verdict(Enum):
    """What the session does after a usage report."""

    GO_ON = "go_on"
    WARN = "warn"
    END = "end"


@dataclass
class DailyBudget:
    """The user's daily budget (0: none) as one session sees it."""

    user_id: int
    session_id: uuid.UUID
    limit: int
    others: int = 0  # the user's other sessions today, as last read from the database
    warned: bool = False

    @classmethod
    async def load(cls, *, user_id: int, session_id: uuid.UUID, default: int) -> "DailyBudget":
        """The budget of ``user_id`` (their own figure, else ``default``) for a new session."""
        limit = await database_sync_to_async(services.daily_token_limit)(
            user_id=user_id, default=default
        )
        budget = cls(user_id=user_id, session_id=session_id, limit=limit)
        await budget.refresh()
        return budget

    async def refresh(self) -> None:
        """Read the user's other sessions' tokens of today again (kept if the database is away)."""
        if not self.limit:
            return
        try:
            self.others = await database_sync_to_async(services.user_tokens_today)(
                user_id=self.user_id, exclude=self.session_id
            )
        except DatabaseError as exc:
            logger.warning("Session %s: budget not re-read (%s)", self.session_id, exc)

    def used(self, own: int) -> int:
        """Tokens the user spent today, this session's ``own`` included."""
        return self.others + own

    def verdict(self, own: int) -> Verdict:
        """END at the whole budget; WARN once past WARN_AT of it; else GO_ON."""
        if not self.limit:
            return Verdict.GO_ON
        used = self.used(own)
        if used >= self.limit:
            return Verdict.END
        if used >= WARN_AT * self.limit and not self.warned:
            self.warned = True
            return Verdict.WARN
        return Verdict.GO_ON
