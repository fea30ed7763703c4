"""Database writes for live sessions. Sync functions: call them via database_sync_to_async."""

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sessions_app.models import LiveSession, TranscriptEntry
from sessions_app.transcripts import Line


@dataclass
class SessionCounters:
    """Running totals of one session, stored with every flush."""

    frames_received: int = 0
    audio_seconds_in: float = 0.0
    audio_seconds_out: float = 0.0
    prompt_tokens: int = 0
    response_tokens: int = 0
    total_tokens: int = 0


def live_session_create(
    *, user: AbstractBaseUser, model: str, modality: str, voice: str, user_agent: str
) -> LiveSession:
    """Create the row of a session that is starting."""
    return LiveSession.objects.create(
        user=user,
        model=model,
        response_modality=modality,
        voice=voice,
        user_agent=user_agent[:512],
    )


def transcript_lines_save(
    *, session_id: uuid.UUID, lines: Sequence[Line], counters: SessionCounters
) -> None:
    """Store transcript lines and the session's running totals in one transaction."""
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
        LiveSession.objects.filter(pk=session_id).update(**asdict(counters))


def live_session_finish(
    *, session_id: uuid.UUID, status: str, end_reason: str, counters: SessionCounters
) -> bool:
    """Mark an active session finished; False if it had already been finished."""
    updated = LiveSession.objects.filter(pk=session_id, status=LiveSession.Status.ACTIVE).update(
        status=status, end_reason=end_reason, ended_at=timezone.now(), **asdict(counters)
    )
    return bool(updated)
