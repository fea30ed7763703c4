"""Admin review of live sessions: read-only, transcript and notes inline, exports, usage."""

from datetime import date, datetime, time, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from sessions_app import control, exports, services, usage
from sessions_app.events_log import log_event
from sessions_app.models import LiveSession, Note, TranscriptEntry, UserBudget
from sessions_app.session.endings import ADMIN_END_MESSAGE

ALREADY_ENDED = gettext_noop("%(count)d selected session(s) had already ended.")

USAGE_DEFAULT_DAYS = 30


class _ReadOnlyInline(admin.TabularInline):
    """Rows the relay writes: readable by whoever may view the session, never edited."""

    extra = 0
    can_delete = False
    show_change_link = False
    # Django's tabular inline heads each row with str(obj), which for a transcript line
    # is its text again: this copy of that template shows the columns only.
    template = "admin/sessions_app/livesession/record_inline.html"

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Whoever may view a session may read what belongs to it."""
        return bool(request.user.has_perm("sessions_app.view_livesession"))

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Written by the relay only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Never edited."""
        return False


class TranscriptEntryInline(_ReadOnlyInline):
    """The transcript, read-only, in sequence order."""

    model = TranscriptEntry
    fields = ("sequence", "created_at", "role", "source", "text")
    readonly_fields = fields
    ordering = ("sequence",)


class NoteInline(_ReadOnlyInline):
    """The notes the model saved, oldest first."""

    model = Note
    fields = ("created_at", "title", "body")
    readonly_fields = fields
    ordering = ("created_at", "id")


class UsageRangeForm(forms.Form):
    """The date range of the usage view (both days included)."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        """The range must not run backwards."""
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            raise forms.ValidationError(_("The start date must not be after the end date."))
        return cleaned


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
        "line_count",
        "prompt_tokens",
        "response_tokens",
        "total_tokens",
        "cost_display",
        "resumptions",
    )
    list_filter = ("status", "end_reason", "model", "response_modality", "started_at", "user")
    date_hierarchy = "started_at"
    search_fields = (
        "user__username",
        "user__email",
        "entries__text",
        "notes__title",
        "notes__body",
    )
    list_select_related = ("user",)
    readonly_fields = [f.name for f in LiveSession._meta.fields] + ["duration_display"]
    inlines = [TranscriptEntryInline, NoteInline]
    actions = ["end_now", "export_json", "export_markdown", "export_csv"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LiveSession]:
        """Sessions with their user and how many transcript lines they hold."""
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .annotate(line_total=Count("entries", distinct=True))
        )

    def get_urls(self) -> list[URLPattern]:
        """The usage view next to the changelist."""
        usage_view = self.admin_site.admin_view(self.usage_view)
        own = [path("usage/", usage_view, name="sessions_app_livesession_usage")]
        return own + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Sessions are created by the relay only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        """Only viewing: nothing in a session is edited by hand."""
        return False

    def has_end_permission(self, request: HttpRequest) -> bool:
        """Whether the user may end other people's live sessions."""
        return request.user.has_perm("sessions_app.end_livesession")

    @admin.action(description=_("End live session now"), permissions=["end"])
    def end_now(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> None:
        """Ask the worker holding each selected live session, wherever it runs, to end it."""
        live = list(queryset.filter(status=LiveSession.Status.ACTIVE).values_list("pk", "user_id"))
        unreachable = 0
        for session_id, owner_id in live:
            log_event(
                "session_end_requested", session_id=session_id, user_id=owner_id,
                admin_id=request.user.pk, reason=LiveSession.EndReason.ADMIN_ENDED,
            )  # fmt: skip
            try:
                async_to_sync(control.request_end)(
                    session_id, reason=LiveSession.EndReason.ADMIN_ENDED, message=ADMIN_END_MESSAGE
                )
            except control.LayerUnavailable:
                unreachable += 1
        skipped = queryset.count() - len(live)
        asked = len(live) - unreachable
        if unreachable:
            self.message_user(
                request,
                gettext(
                    "Could not reach the workers holding %(count)d live session(s): the"
                    " channel layer (Redis) is unavailable. They were not asked to end and are"
                    " still live; try again once it is back."
                )
                % {"count": unreachable},
                messages.ERROR,
            )
        self.message_user(
            request,
            gettext("Asked %(count)d live session(s) to end.") % {"count": asked}
            + (f" {gettext(ALREADY_ENDED) % {'count': skipped}}" if skipped else ""),
            messages.SUCCESS if asked else messages.WARNING,
        )

    @admin.action(description=_("Export selected sessions as JSON"), permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> HttpResponse:
        """Download the selected sessions in the JSON schema of docs/exports.md."""
        return exports.download("json", queryset)

    @admin.action(description=_("Export selected sessions as Markdown"), permissions=["view"])
    def export_markdown(
        self, request: HttpRequest, queryset: QuerySet[LiveSession]
    ) -> HttpResponse:
        """Download the selected sessions as readable transcripts."""
        return exports.download("md", queryset)

    @admin.action(description=_("Export selected sessions as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> HttpResponse:
        """Download the selected sessions' transcript lines and notes, one row each."""
        return exports.download("csv", queryset)

    @admin.display(description=_("Duration"))
    def duration_display(self, obj: LiveSession) -> str:
        """Duration as H:MM:SS."""
        duration = obj.duration
        return "-" if duration is None else exports.hms(duration.total_seconds())

    @admin.display(description=_("Cost (USD)"), ordering="cost_usd")
    def cost_display(self, obj: LiveSession) -> str:
        """The estimated cost to the hundredth of a cent; "-" when the model had no price."""
        return "-" if obj.cost_usd is None else f"{obj.cost_usd:.4f}"

    @admin.display(description=_("Lines"), ordering="line_total")
    def line_count(self, obj: LiveSession) -> int:
        """How many transcript lines the session holds."""
        return getattr(obj, "line_total", None) or obj.entries.count()

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        """Sessions, minutes and tokens per user over a date range (both days included)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        initial = {"start": today - timedelta(days=USAGE_DEFAULT_DAYS - 1), "end": today}
        form = UsageRangeForm(request.GET or initial)
        rows: list[usage.UserUsage] = []
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            rows = usage.usage_by_user(start=_day_start(start), end=_day_start(end + timedelta(1)))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Usage by user"),
            "opts": self.model._meta,
            "form": form,
            "rows": rows,
            "totals": usage.totals(rows),
        }
        return TemplateResponse(request, "admin/sessions_app/livesession/usage.html", context)


def _day_start(day: date) -> datetime:
    """Midnight at the start of ``day`` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    """One user's own daily token budget, in place of SHARE_DAILY_TOKENS_PER_USER."""

    list_display = ("user", "daily_tokens", "used_today", "note", "updated_at")
    search_fields = ("user__username", "user__email", "note")
    autocomplete_fields = ("user",)
    list_select_related = ("user",)

    @admin.display(description=_("Used today"))
    def used_today(self, obj: UserBudget) -> int:
        """The user's tokens since midnight, every worker's sessions included."""
        return services.user_tokens_today(user_id=obj.user_id)
