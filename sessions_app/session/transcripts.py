"""Merging streamed transcription fragments into transcript lines, in conversation order.

Gemini streams both transcriptions as small fragments. ``TurnBuffer`` joins them into one
line per speaker per turn and hands the lines out, numbered, when the turn completes.

Lines are numbered in the order in which they began, not in the order they were finished
or their words arrived:

- the model's reply and a message typed while it is still answering: the reply began
  first, so it comes first; the typed line waits for the turn to end;
- the user's speech of a turn comes before that turn's reply even when its transcription
  arrives late, after the model began to answer (the service sends the two
  independently): the user spoke first.

A typed message while no turn is in progress is a line of its own at once.

One speaker's line of one turn holds at most :data:`MAX_LINE_CHARS` characters: a stream
of fragments that never ends its turn (a hostile or broken upstream) cannot grow a line,
or the page showing it, without bound. What comes past the cap is left out, and said so
once in the line.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from sessions_app.models import TranscriptEntry

Role = TranscriptEntry.Role
Source = TranscriptEntry.Source

MAX_LINE_CHARS = 20_000  # about 50 minutes of speech: far past any real turn
CUT_MARK = " [...]"


@dataclass(frozen=True)
class Line:
    """A transcript line ready to be stored."""

    sequence: int
    role: str
    source: str
    text: str
    created_at: datetime


@dataclass
class _Pending:
    """A line of the turn in progress: a speaker's fragments, or a typed message."""

    began: int  # position in conversation order
    role: str
    source: str
    started_at: datetime
    fragments: list[str] = field(default_factory=list)
    size: int = 0  # characters in ``fragments``
    cut: bool = False  # the line reached MAX_LINE_CHARS: later fragments are left out


class TurnBuffer:
    """Joins fragments per speaker and numbers lines in the order they began."""

    def __init__(self, next_sequence: int = 1) -> None:
        self._next_sequence = next_sequence
        self._clock = 0
        self._speakers: dict[str, _Pending] = {}
        self._typed: list[_Pending] = []  # typed while the turn was in progress
        self.turn = 1

    def add_fragment(self, *, role: str, source: str, text: str) -> str:
        """Add a fragment of the turn in progress; returns what was kept of it.

        Past :data:`MAX_LINE_CHARS` for the line, the fragment is cut (the cut marked
        once) and later ones are kept as "": the caller shows the browser only what is kept.
        """
        speaker = self._speakers.get(role)
        if speaker is None:
            began = self._tick()
            if role == Role.USER and self._speakers:
                began = min(item.began for item in self._speakers.values())
            speaker = self._speakers[role] = _Pending(began, role, source, timezone.now())
        if speaker.cut:
            return ""
        room = MAX_LINE_CHARS - speaker.size
        if len(text) > room:
            text, speaker.cut = text[:room] + CUT_MARK, True
        speaker.fragments.append(text)
        speaker.size += len(text)
        return text

    def add_typed(self, text: str) -> Line | None:
        """A typed message: a line now, or (mid-turn) once the turn it interrupts is done."""
        if not self._speakers:
            return self._line(Role.USER, Source.TYPED, text, timezone.now())
        pending = _Pending(self._tick(), Role.USER, Source.TYPED, timezone.now(), [text])
        self._typed.append(pending)
        return None

    def complete_turn(self) -> list[Line]:
        """End the turn: its lines in the order they began; empty ones are skipped."""
        pending = sorted(
            [*self._speakers.values(), *self._typed],
            key=lambda item: (item.began, item.role != Role.USER),
        )
        self._speakers, self._typed = {}, []
        lines = []
        for item in pending:
            text = "".join(item.fragments).strip()
            if text:
                lines.append(self._line(item.role, item.source, text, item.started_at))
        self.turn += 1
        return lines

    @property
    def pending(self) -> bool:
        """Whether the turn in progress holds any fragment."""
        return bool(self._speakers)

    def _tick(self) -> int:
        """The next position in conversation order."""
        self._clock += 1
        return self._clock

    def _line(self, role: str, source: str, text: str, created_at: datetime) -> Line:
        """Number a new line."""
        line = Line(self._next_sequence, role, source, text, created_at)
        self._next_sequence += 1
        return line
