"""Merging streamed transcription fragments into transcript lines.

Gemini streams both transcriptions as small fragments. ``TurnBuffer`` joins them into one
line per speaker per turn and hands the lines out, numbered, when the turn completes or is
interrupted. Typed messages become lines at once.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from sessions_app.models import TranscriptEntry

Role = TranscriptEntry.Role
Source = TranscriptEntry.Source


@dataclass(frozen=True)
class Line:
    """A transcript line ready to be stored."""

    sequence: int
    role: str
    source: str
    text: str
    created_at: datetime


@dataclass
class _Speaker:
    """Fragments of one speaker in the turn in progress."""

    source: str
    started_at: datetime
    fragments: list[str] = field(default_factory=list)


class TurnBuffer:
    """Joins fragments per speaker and numbers lines in conversation order."""

    def __init__(self, next_sequence: int = 1) -> None:
        self._next_sequence = next_sequence
        self._speakers: dict[str, _Speaker] = {}
        self.turn = 1

    def add_fragment(self, *, role: str, source: str, text: str) -> None:
        """Add a fragment of the turn in progress."""
        speaker = self._speakers.get(role)
        if speaker is None:
            speaker = self._speakers[role] = _Speaker(source=source, started_at=timezone.now())
        speaker.fragments.append(text)

    def add_typed(self, text: str) -> Line:
        """A typed message is a line of its own, numbered now."""
        return self._line(Role.USER, Source.TYPED, text, timezone.now())

    def complete_turn(self) -> list[Line]:
        """End the turn: the user's line first, then the model's; empty ones are skipped."""
        lines = []
        for role in (Role.USER, Role.MODEL):
            speaker = self._speakers.pop(role, None)
            if speaker is None:
                continue
            text = "".join(speaker.fragments).strip()
            if text:
                lines.append(self._line(role, speaker.source, text, speaker.started_at))
        self.turn += 1
        return lines

    @property
    def pending(self) -> bool:
        """Whether the turn in progress holds any fragment."""
        return bool(self._speakers)

    def _line(self, role: str, source: str, text: str, created_at: datetime) -> Line:
        """Number a new line."""
        line = Line(self._next_sequence, role, source, text, created_at)
        self._next_sequence += 1
        return line
