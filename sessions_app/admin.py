"""Admin review of live sessions: read-only, transcript inline and in order."""

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions_app import control
from sessions_app.models import LiveSession, TranscriptEntry

ADMIN_END_MESSAGE = "An administrator ended this session."


class TranscriptEntryInline(admin.TabularInline):
    """The transcript, read-only, in sequence order."""

    model = TranscriptEntry
    fields = ("sequence", "created_at", "role", "source", "text")
    readonly_fields = fields
    ordering = ("sequence",)
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Whoever may view a session may read its transcript."""
        return bool(request.user.has_perm("sessions_app.view_livesession"))

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Transcripts are written by the relay only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Transcripts are never edited."""
        return False


@admin.register(LiveSession)
class LiveSessionAdmin(admin.ModelAdmin):
    """Sessions are records of what happened: viewable, never edited by hand."""

    list_display = (
        "started_at",
        "user",
        "duration_display",
        "status",
        "end_reason",
        "model",
        "response_modality",
        "total_tokens",
    )
    list_filter = ("status", "response_modality", "started_at", "user")
    date_hierarchy = "started_at"
    search_fields = ("user__username", "user__email", "entries__text")
    list_select_related = ("user",)
    readonly_fields = [f.name for f in LiveSession._meta.fields] + ["duration_display"]
    inlines = [TranscriptEntryInline]
    actions = ["end_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LiveSession]:
        """Sessions with their user."""
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Sessions are created by the relay only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Only viewing: nothing in a session is edited by hand."""
        return False

    def has_end_permission(self, request: HttpRequest) -> bool:
        """Whether the user may end other people's live sessions."""
        return request.user.has_perm("sessions_app.end_livesession")

    @admin.action(description="End live session now", permissions=["end"])
    def end_now(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> None:
        """Ask the worker holding each selected live session, wherever it runs, to end it."""
        live = list(queryset.filter(status=LiveSession.Status.ACTIVE).values_list("pk", flat=True))
        for session_id in live:
            async_to_sync(control.request_end)(
                session_id, reason=LiveSession.EndReason.ADMIN_ENDED, message=ADMIN_END_MESSAGE
            )
        skipped = queryset.count() - len(live)
        self.message_user(
            request,
            f"Asked {len(live)} live session(s) to end."
            + (f" {skipped} selected session(s) had already ended." if skipped else ""),
            messages.SUCCESS if live else messages.WARNING,
        )

    @admin.display(description="Duration")
    def duration_display(self, obj: LiveSession) -> str:
        """Duration as H:MM:SS."""
        duration = obj.duration
        if duration is None:
            return "-"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
