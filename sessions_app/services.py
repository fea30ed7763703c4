"""Database writes for live sessions. Sync functions: call them via database_sync_to_async."""

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from sessions_app.models import LiveSession, Note, TranscriptEntry, UserBudget
from sessions_app.prices import Prices, TokenCounts, cost_usd
from sessions_app.session.transcripts import Line


@dataclass
class SessionCounters:
    """Running totals of one session, stored with every flush."""

    frames_received: int = 0
    audio_seconds_in: float = 0.0
    audio_seconds_out: float = 0.0
    prompt_tokens: int = 0
    response_tokens: int = 0
    total_tokens: int = 0  # the service's totals: thinking and tool-use tokens included
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    resumptions: int = 0
    speech_dropped_s: float = 0.0  # model speech a slow browser did not read in time
    # Tokens per modality as the model reports them, e.g. {"AUDIO": 1200, "TEXT": 40}.
    prompt_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    response_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    tool_use_prompt_tokens_by_modality: dict[str, int] = field(default_factory=dict)
    cost_usd: Decimal | None = None  # None: the price table has no price for the model

    def snapshot(self) -> "SessionCounters":
        """A copy that later changes (the dicts included) do not reach: store this one."""
        return replace(
            self,
            prompt_tokens_by_modality=dict(self.prompt_tokens_by_modality),
            response_tokens_by_modality=dict(self.response_tokens_by_modality),
            tool_use_prompt_tokens_by_modality=dict(self.tool_use_prompt_tokens_by_modality),
        )

    def add_usage(
        self,
        *,
        prompt: int,
        response: int,
        total: int,
        prompt_by_modality: dict[str, int],
        response_by_modality: dict[str, int],
        thoughts: int = 0,
        tool_use: int = 0,
        tool_use_by_modality: dict[str, int] | None = None,
    ) -> None:
        """Add the tokens of one response."""
        self.prompt_tokens += prompt
        self.response_tokens += response
        self.total_tokens += total
        self.thoughts_tokens += thoughts
        self.tool_use_prompt_tokens += tool_use
        for totals, counts in (
            (self.prompt_tokens_by_modality, prompt_by_modality),
            (self.response_tokens_by_modality, response_by_modality),
            (self.tool_use_prompt_tokens_by_modality, tool_use_by_modality or {}),
        ):
            for modality, count in counts.items():
                totals[modality] = totals.get(modality, 0) + count

    def price(self, prices: Prices | None) -> None:
        """Set ``cost_usd`` from the totals at ``prices`` (None: no price, no cost)."""
        self.cost_usd = None if prices is None else cost_usd(prices, TokenCounts.of(self))


class SessionRefused(Exception):
    """A session may not start now; the refused row is stored with ``end_reason``."""

    def __init__(self, end_reason: str, message: str) -> None:
        super().__init__(message)
        self.end_reason = end_reason
        self.message = message
        self.session_id: uuid.UUID | None = None  # the refused row, once stored


def live_session_create(
    *,
    user: User,
    model: str,
    modality: str,
    voice: str,
    user_agent: str,
    max_per_user: int = 0,
    stale_after_s: float = 60.0,
    daily_tokens: int = 0,
    refuse: SessionRefused | None = None,
) -> LiveSession:
    """Create the row of a session that is starting; raise SessionRefused past a limit.

    The per-user limit counts the user's live rows in the database, so it holds across
    every worker process; so does the daily token budget (``daily_tokens``, or the user's
    own :class:`UserBudget`), which sums the tokens of the user's sessions of today. The
    user's row is locked first (PostgreSQL) and the new row is inserted before counting
    (SQLite serialises writers), so two workers starting a session at once cannot both
    slip under the limit. A refused session is stored too, ended at once with the
    refusal's reason, so admins see it. ``refuse`` stores such a row for a refusal decided
    by the caller (the per-worker limit).
    """
    stale_sessions_sweep(stale_after_s=stale_after_s)
    now = timezone.now()
    stale_after = timedelta(seconds=stale_after_s)
    with transaction.atomic():
        if connection.features.has_select_for_update:
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        session = LiveSession.objects.create(
            user=user,
            model=model,
            response_modality=modality,
            voice=voice,
            user_agent=user_agent[:512],
            heartbeat_at=now,
        )
        if refuse is None and max_per_user > 0:
            refuse = _user_limit_refusal(user, max_per_user, since=now - stale_after)
        if refuse is None:
            refuse = _budget_refusal(user.pk, daily_tokens)
        if refuse is not None:
            LiveSession.objects.filter(pk=session.pk).update(
                status=LiveSession.Status.FAILED, end_reason=refuse.end_reason, ended_at=now
            )
    if refuse is not None:
        refuse.session_id = session.pk
        raise refuse
    return session


def _user_limit_refusal(user: User, max_per_user: int, *, since: datetime) -> SessionRefused | None:
    """The refusal of a session past the user's limit of live rows (new one included)."""
    live = LiveSession.objects.filter(
        user=user, status=LiveSession.Status.ACTIVE, heartbeat_at__gte=since
    ).count()
    if live <= max_per_user:
        return None
    return SessionRefused(
        LiveSession.EndReason.USER_LIMIT,
        ngettext(
            "You already have %(count)d live session open. End one to start another.",
            "You already have %(count)d live sessions open. End one to start another.",
            max_per_user,
        )
        % {"count": max_per_user},
    )


def _budget_refusal(user_id: int, default_daily_tokens: int) -> SessionRefused | None:
    """The refusal of a session whose user has spent their daily budget already."""
    limit = daily_token_limit(user_id=user_id, default=default_daily_tokens)
    if not limit:
        return None
    used = user_tokens_today(user_id=user_id)
    if used < limit:
        return None
    return SessionRefused(
        LiveSession.EndReason.BUDGET_EXHAUSTED,
        gettext(
            "You have used your daily allowance of %(limit)s tokens (%(used)s today), so no"
            " session can start. It resets at midnight; an administrator can raise it."
        )
        % {"limit": f"{limit:,}", "used": f"{used:,}"},
    )


def daily_token_limit(*, user_id: int, default: int) -> int:
    """The user's daily token budget: their own (admin-set) figure, else ``default``; 0: none."""
    own = UserBudget.objects.filter(user_id=user_id).values_list("daily_tokens", flat=True)
    return next(iter(own), default)


def day_start(now: datetime | None = None) -> datetime:
    """Midnight at the start of today (or of ``now``'s day) in the site's time zone."""
    local = timezone.localtime(now)
    return timezone.make_aware(datetime.combine(local.date(), time.min), local.tzinfo)


def user_tokens_today(*, user_id: int, exclude: uuid.UUID | None = None) -> int:
    """Tokens of the user's sessions started since midnight, as stored (every worker's).

    A live session's row holds its totals as of its last completed turn. ``exclude``
    leaves one session out (the caller's own, whose totals it knows better).
    """
    sessions = LiveSession.objects.filter(user_id=user_id, started_at__gte=day_start())
    if exclude is not None:
        sessions = sessions.exclude(pk=exclude)
    return int(sessions.aggregate(total=Sum("total_tokens"))["total"] or 0)


def live_session_heartbeat(*, session_id: uuid.UUID) -> bool:
    """Stamp a live session's row; False if it is no longer active."""
    return bool(
        LiveSession.objects.filter(pk=session_id, status=LiveSession.Status.ACTIVE).update(
            heartbeat_at=timezone.now()
        )
    )


def stale_sessions_sweep(*, stale_after_s: float) -> int:
    """Mark active sessions whose worker stopped stamping them as interrupted.

    Such rows belong to a process that was killed (SIGKILL, out of memory, power loss):
    a live worker stamps its sessions every ``SHARE_HEARTBEAT_S``. Their completed turns
    were stored as they happened; the end time is the last heartbeat.
    """
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    stale = LiveSession.objects.filter(status=LiveSession.Status.ACTIVE).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    return stale.update(
        status=LiveSession.Status.INTERRUPTED,
        end_reason=LiveSession.EndReason.WORKER_LOST,
        ended_at=Coalesce(F("heartbeat_at"), F("started_at")),
    )


def transcript_lines_save(
    *, session_id: uuid.UUID, lines: Sequence[Line], counters: SessionCounters
) -> None:
    """Store transcript lines and the session's running totals in one transaction.

    Idempotent: a line already stored (same session and sequence) is skipped, so a batch
    whose commit was lost on the way may be written again. The row's heartbeat is stamped
    too: after a database outage the first write shows at once that the worker still
    holds the session, before another worker's stale sweep would take it for lost.
    """
    with transaction.atomic():
        TranscriptEntry.objects.bulk_create(
            [
                TranscriptEntry(
                    session_id=session_id,
                    sequence=line.sequence,
                    role=line.role,
                    source=line.source,
                    text=line.text,
                    created_at=line.created_at,
                )
                for line in lines
            ],
            ignore_conflicts=True,
        )
        LiveSession.objects.filter(pk=session_id).update(
            heartbeat_at=timezone.now(), **asdict(counters)
        )


def live_session_finish(
    *, session_id: uuid.UUID, status: str, end_reason: str, counters: SessionCounters
) -> bool:
    """Mark an active session finished; False if it had already been finished."""
    updated = LiveSession.objects.filter(pk=session_id, status=LiveSession.Status.ACTIVE).update(
        status=status,
        end_reason=end_reason,
        ended_at=timezone.now(),
        heartbeat_at=timezone.now(),
        **asdict(counters),
    )
    return bool(updated)


def note_create(*, session_id: uuid.UUID, call_id: str, title: str, body: str) -> Note:
    """Store a note the model saved during a session (the save_note tool)."""
    return Note.objects.create(session_id=session_id, call_id=call_id, title=title, body=body)


@dataclass(frozen=True)
class PurgeCounts:
    """What a purge removed (or, in a dry run, would remove)."""

    sessions: int
    lines: int
    notes: int


def sessions_purge(*, older_than_days: int, dry_run: bool = False) -> PurgeCounts:
    """Delete the sessions that started before the cutoff, with their transcripts and notes.

    Live sessions are kept whatever their age: the worker holding one still writes to it.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = LiveSession.objects.filter(started_at__lt=cutoff).exclude(
        status=LiveSession.Status.ACTIVE
    )
    with transaction.atomic():
        counts = PurgeCounts(
            sessions=old.count(),
            lines=TranscriptEntry.objects.filter(session__in=old).count(),
            notes=Note.objects.filter(session__in=old).count(),
        )
        if not dry_run:
            old.delete()
    return counts
