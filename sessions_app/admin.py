"""Admin review of live sessions: read-only, transcript inline and in order."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions_app.models import LiveSession, TranscriptEntry


class TranscriptEntryInline(admin.TabularInline):
    """The transcript, read-only, in sequence order."""

    model = TranscriptEntry
    fields = ("sequence", "created_at", "role", "source", "text")
    readonly_fields = fields
    ordering = ("sequence",)
    extra = 0
    can_delete = False
    show_change_link = False

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

    def get_queryset(self, request: HttpRequest) -> QuerySet[LiveSession]:
        """Sessions with their user."""
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Sessions are created by the relay only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Only viewing: nothing in a session is edited by hand."""
        return False

    @admin.display(description="Duration")
    def duration_display(self, obj: LiveSession) -> str:
        """Duration as H:MM:SS."""
        duration = obj.duration
        if duration is None:
            return "-"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
