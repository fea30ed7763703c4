"""Live sessions and their transcripts."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LiveSession(models.Model):
    """One share session: a browser connection relayed to one Gemini Live conversation."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ENDED = "ended", _("Ended")
        FAILED = "failed", _("Failed")
        INTERRUPTED = "interrupted", _("Interrupted")

    class EndReason(models.TextChoices):
        CLIENT_STOP = "client_stop", _("Stopped by the user")
        CLIENT_DISCONNECT = "client_disconnect", _("Browser disconnected")
        UPSTREAM_UNAVAILABLE = "upstream_unavailable", _("Could not reach the model")
        UPSTREAM_CLOSED = "upstream_closed", _("Model connection closed")
        UPSTREAM_ERROR = "upstream_error", _("Model connection failed")
        PROTOCOL_ERROR = "protocol_error", _("Browser protocol violation")
        DURATION_LIMIT = "duration_limit", _("Reached the maximum session length")
        IDLE_TIMEOUT = "idle_timeout", _("No media or text for too long")
        USER_LIMIT = "user_limit", _("Refused: too many live sessions for the user")
        WORKER_LIMIT = "worker_limit", _("Refused: the server is at capacity")
        ADMIN_ENDED = "admin_ended", _("Ended by an admin")
        SERVER_SHUTDOWN = "server_shutdown", _("Server shutdown")
        WORKER_LOST = "worker_lost", _("The server process stopped unexpectedly")
        RATE_LIMITED = "rate_limited", _("Closed: the browser sent too much")
        INTERNAL_ERROR = "internal_error", _("Failed: an error in the server")
        STORAGE_UNAVAILABLE = "storage_unavailable", _("Failed: the database was away too long")
        BUDGET_EXHAUSTED = "budget_exhausted", _("The user's daily token budget was used up")

    class Modality(models.TextChoices):
        AUDIO = "AUDIO", _("Voice")
        TEXT = "TEXT", _("Text")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="live_sessions"
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    model = models.CharField(max_length=128)
    response_modality = models.CharField(max_length=8, choices=Modality.choices)
    voice = models.CharField(max_length=32, blank=True)
    frames_received = models.PositiveIntegerField(default=0)
    audio_seconds_in = models.FloatField(default=0.0)
    audio_seconds_out = models.FloatField(default=0.0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    response_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(
        default=0, help_text="As the service bills them: thinking and tool-use tokens included."
    )
    thoughts_tokens = models.PositiveBigIntegerField(default=0)
    tool_use_prompt_tokens = models.PositiveBigIntegerField(default=0)
    # Tokens per modality as the model reports them, e.g. {"AUDIO": 1200, "TEXT": 40}.
    prompt_tokens_by_modality = models.JSONField(default=dict, blank=True)
    response_tokens_by_modality = models.JSONField(default=dict, blank=True)
    tool_use_prompt_tokens_by_modality = models.JSONField(default=dict, blank=True)
    cost_usd = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Estimated: the tokens as the service reported them, times the price table"
        " (GEMINI_PRICES) when the session ran; empty if the table has no price for the model.",
    )
    speech_dropped_s = models.FloatField(
        default=0.0,
        help_text="Seconds of the model's speech dropped because the browser read too slowly.",
    )
    resumptions = models.PositiveIntegerField(
        default=0, help_text="How often the model connection was handed over or resumed."
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker holding the session."
    )
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["user", "-started_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        permissions = [("end_livesession", "Can end a live session of any user")]

    def __str__(self) -> str:
        return f"{self.user} {self.started_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def duration(self) -> timedelta | None:
        """Wall time from start to end, or to now while active."""
        end = self.ended_at or (timezone.now() if self.status == self.Status.ACTIVE else None)
        return end - self.started_at if end else None


class TranscriptEntry(models.Model):
    """One line of a transcript: a whole speaker turn, or one typed message."""

    class Role(models.TextChoices):
        USER = "user", _("User")
        MODEL = "model", _("Model")

    class Source(models.TextChoices):
        SPEECH = "speech", _("Speech")
        TYPED = "typed", _("Typed")
        TEXT_REPLY = "text-reply", _("Text reply")

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="entries")
    sequence = models.PositiveIntegerField()
    role = models.CharField(max_length=8, choices=Role.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence"], name="unique_entry_sequence"),
        ]
        verbose_name_plural = "transcript entries"

    def __str__(self) -> str:
        return f"#{self.sequence} {self.role}: {self.text[:60]}"


class Note(models.Model):
    """A note the model saved for the user during a session (the save_note tool)."""

    session = models.ForeignKey(LiveSession, on_delete=models.CASCADE, related_name="notes")
    call_id = models.CharField(max_length=128, blank=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "created_at", "id"]

    def __str__(self) -> str:
        return self.title


class UserBudget(models.Model):
    """A user's own daily token budget, in place of SHARE_DAILY_TOKENS_PER_USER."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_budget"
    )
    daily_tokens = models.PositiveBigIntegerField(
        help_text=_("Tokens this user may spend a day, counted from midnight. 0: no limit.")
    )
    note = models.CharField(max_length=200, blank=True, help_text=_("Why, for other admins."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("daily token budget")
        verbose_name_plural = _("daily token budgets")

    def __str__(self) -> str:
        return f"{self.user}: {self.daily_tokens}"
