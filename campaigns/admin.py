from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from campaigns.models import Campaign, CampaignTransition, MessageTemplate, TransitionNotAllowed
from messaging.admin import ReadOnlyAdmin
from messaging.models import Message


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "channel", "updated_at")
    list_filter = ("channel",)
    search_fields = ("name", "body")


@dataclass(frozen=True)
class Action:
    """A button on the campaign page: which method it calls and who may press it."""

    name: str
    label: str
    from_statuses: tuple[str, ...]
    permission: str
    note_label: str = ""
    note_required: bool = False


S = Campaign.Status
ACTIONS = {
    a.name: a
    for a in (
        Action("submit", "Submit for approval", (S.DRAFT,), "change"),
        Action("approve", "Approve", (S.PENDING_APPROVAL,), "approve", "Note (optional)"),
        Action("reject", "Reject", (S.PENDING_APPROVAL,), "approve", "Reason", note_required=True),
        Action("pause", "Pause", (S.SENDING,), "change", "Reason (optional)"),
        Action("resume", "Resume", (S.PAUSED,), "change"),
        Action(
            "cancel",
            "Cancel campaign",
            (S.DRAFT, S.PENDING_APPROVAL, S.SCHEDULED, S.SENDING, S.PAUSED),
            "change",
            "Reason (optional)",
        ),
    )
}


class TransitionForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


def perform(action: str, campaign: Campaign, user: Any, note: str = "") -> None:
    """Call the campaign method behind `action`; the model enforces every rule."""
    if action == "submit":
        campaign.submit(by=user)
    elif action == "approve":
        campaign.approve(by=user, note=note)
    elif action == "reject":
        campaign.reject(by=user, reason=note)
    elif action == "pause":
        campaign.pause(by=user, reason=note)
    elif action == "resume":
        campaign.resume(by=user)
    elif action == "cancel":
        campaign.cancel(by=user, reason=note)
    else:
        raise ValueError(action)


class TransitionInline(admin.TabularInline):
    model = CampaignTransition
    extra = 0
    can_delete = False
    fields = ("at", "action", "from_status", "to_status", "actor", "note")
    readonly_fields = fields
    verbose_name_plural = "history"

    @admin.display(description="by")
    def actor(self, transition: CampaignTransition) -> str:
        if transition.by_id is None:
            return "Herald (engine)"
        return transition.by.get_username() if transition.by else "(deleted user)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CampaignTransition)
class CampaignTransitionAdmin(ReadOnlyAdmin):
    """The audit log of every campaign's state changes."""

    list_display = ("at", "campaign", "action", "from_status", "to_status", "by", "note")
    list_filter = ("action", "to_status")
    list_select_related = ("campaign", "by")
    search_fields = ("campaign__name", "note")
    date_hierarchy = "at"


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "channel", "provider_account", "submitted_by", "approved_by")
    list_filter = ("status", "channel")
    list_select_related = ("provider_account", "submitted_by", "approved_by")
    search_fields = ("name",)
    filter_horizontal = ("groups", "tags", "exclude_groups")
    inlines = (TransitionInline,)
    actions = ("submit_selected", "approve_selected", "pause_selected", "resume_selected")
    frozen_fields = (
        "name",
        "channel",
        "provider_account",
        "sender",
        "template",
        "body",
        "groups",
        "tags",
        "exclude_groups",
        "scheduled_at",
    )
    record_fields = (
        "status",
        "progress",
        "rejection_reason",
        "pause_reason",
        "submitted_by",
        "submitted_at",
        "approved_by",
        "approved_at",
        "started_at",
        "completed_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "channel", "provider_account", "sender")}),
        ("Content", {"fields": ("template", "body")}),
        ("Audience", {"fields": ("groups", "tags", "exclude_groups")}),
        ("Schedule", {"fields": ("scheduled_at",)}),
        ("Status", {"fields": record_fields}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.status not in Campaign.EDITABLE_STATUSES:
            return self.record_fields + self.frozen_fields
        return self.record_fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        campaign = form.instance
        edited = campaign.compute_content_hash() != campaign.content_hash
        if campaign.status in (S.PENDING_APPROVAL, S.SCHEDULED) and edited:
            campaign.return_to_draft(by=request.user)
            messages.warning(
                request, "The campaign was changed after submit, so it is a draft again."
            )

    @admin.display(description="messages")
    def progress(self, campaign: Campaign) -> str:
        if campaign.pk is None:
            return "-"
        counts = campaign.messages.all().status_counts()
        shown = [(label, counts[value]) for value, label in Message.Status.choices if counts[value]]
        if not shown:
            return "none yet"
        return format_html_join(" · ", "{}: <strong>{}</strong>", shown)

    # Buttons on the campaign page, each to a confirm page that calls one model method.

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:pk>/transition/<str:action>/",
                self.admin_site.admin_view(self.transition_view),
                name="campaigns_campaign_transition",
            )
        ]
        return own + super().get_urls()

    def available_actions(self, request: HttpRequest, campaign: Campaign) -> list[Action]:
        return [
            a
            for a in ACTIONS.values()
            if campaign.status in a.from_statuses and self._may(request, a, campaign)
        ]

    def _may(self, request: HttpRequest, action: Action, campaign: Campaign) -> bool:
        if action.permission == "approve":
            return request.user.has_perm("campaigns.approve_campaign")
        return self.has_change_permission(request, campaign)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        campaign = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if campaign is not None:
            extra_context["transition_actions"] = [
                (a, reverse("admin:campaigns_campaign_transition", args=(campaign.pk, a.name)))
                for a in self.available_actions(request, campaign)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def transition_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        chosen = ACTIONS.get(action)
        if chosen is None or not self._may(request, chosen, campaign):
            raise PermissionDenied
        change_url = reverse("admin:campaigns_campaign_change", args=(campaign.pk,))
        form = TransitionForm(request.POST or None)
        confirmed = request.method == "POST" and form.is_valid()
        if confirmed and self._perform(request, chosen, campaign, form.cleaned_data["note"]):
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "campaign": campaign,
            "action": chosen,
            "form": form,
            "change_url": change_url,
            "title": f"{chosen.label}: {campaign}",
        }
        return TemplateResponse(request, "admin/campaigns/campaign/transition.html", context)

    def _perform(self, request: HttpRequest, action: Action, campaign: Campaign, note: str) -> bool:
        try:
            perform(action.name, campaign, request.user, note)
        except (TransitionNotAllowed, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return True
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return False
        done = format_html(
            "“{}” is now <strong>{}</strong>.", campaign, campaign.get_status_display()
        )
        self.message_user(request, done, messages.SUCCESS)
        return True

    # Bulk actions on the changelist, reporting what moved and what did not.

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Campaign], action: str) -> None:
        moved, refused = 0, []
        for campaign in queryset:
            try:
                perform(action, campaign, request.user)
                moved += 1
            except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
                text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                refused.append(f"{campaign}: {text}")
        if moved:
            self.message_user(
                request, f"{action.capitalize()}: {moved} campaign(s).", messages.SUCCESS
            )
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Submit selected campaigns for approval", permissions=["change"])
    def submit_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._bulk(request, queryset, "submit")

    @admin.action(description="Approve selected campaigns", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._bulk(request, queryset, "approve")

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._bulk(request, queryset, "pause")

    @admin.action(description="Resume selected campaigns", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._bulk(request, queryset, "resume")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.approve_campaign")
