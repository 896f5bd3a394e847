"""Campaigns in the admin: the marketer's page (preview, test send, live counts), buttons
that call the state machine's methods, and the approvers' queue."""

import copy
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from campaigns.models import (
    Campaign,
    CampaignTransition,
    MessageTemplate,
    PendingApproval,
    TransitionNotAllowed,
)
from campaigns.preview import estimate
from campaigns.testsend import first_recipient, send_test
from contacts.models import normalise_phone
from contacts.phones import redact
from messaging.admin import ReadOnlyAdmin
from messaging.models import Message
from messaging.rendering import render, ucs2_characters


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


def error_text(exc: Exception) -> str:
    """What a refused action says to the person who tried it: the model's own words."""
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


# What the preview, live counts and test send panels show.

ENCODING_LABELS = {"gsm7": "GSM-7", "ucs2": "UCS-2"}
#: Statuses in which the campaign page keeps its message counts up to date.
LIVE_STATUSES = (S.PENDING_APPROVAL, S.SCHEDULED, S.SENDING, S.PAUSED)
FINAL_STATUSES = (S.COMPLETED, S.CANCELLED)


def money(amount: Decimal | str | None, currency: str) -> str:
    """An amount as prices are read: always the cents, smaller fractions only when there."""
    value = Decimal(str(amount or 0))
    cents = value.quantize(Decimal("0.01"))
    shown = str(cents) if cents == value else f"{value.normalize():f}"
    return f"{shown} {currency}".strip()


def code_point(character: str) -> str:
    """U+201C: names characters that look like others (quotes) or like nothing (spaces)."""
    return f"U+{ord(character):04X}"


def highlight(text: str) -> SafeString:
    """`text` escaped, each character that forces UCS-2 in a <mark> (titled with its code)."""
    forcing = set(ucs2_characters(text))
    return format_html_join(
        "",
        "{}",
        (
            (format_html('<mark title="{}">{}</mark>', code_point(c), c) if c in forcing else c,)
            for c in text
        ),
    )


def preview_of(campaign: Campaign) -> dict[str, Any] | None:
    """Worked out now for a draft; once submitted, the estimate the approver approves."""
    if campaign.status == S.DRAFT:
        figures = estimate(campaign).as_json()
    elif campaign.estimate:
        figures = campaign.estimate
    else:
        return None
    counted = ("audience", "opted_out", "sendable", "segments", "ucs2_messages")
    return {
        "live": campaign.status == S.DRAFT,
        **{name: figures.get(name, 0) for name in counted},
        "cost": money(figures.get("cost"), figures.get("currency", "")),
        "ucs2_characters": [(c, code_point(c)) for c in figures.get("ucs2_characters", [])],
        "samples": [
            {
                "contact": sample["contact"],
                "body": highlight(sample["body"]),
                "encoding": ENCODING_LABELS.get(sample["encoding"], sample["encoding"]),
                "segments": sample["segments"],
            }
            for sample in figures.get("samples", [])
        ],
    }


def progress_of(campaign: Campaign) -> dict[str, Any]:
    """The live counts endpoint's answer: messages per status, every status present."""
    counts = campaign.messages.all().status_counts()
    return {
        "status": campaign.status,
        "status_label": campaign.get_status_display(),
        "counts": counts,
        "total": sum(counts.values()),
    }


def live_counts_of(campaign: Campaign) -> dict[str, Any]:
    progress = progress_of(campaign)
    final: list[tuple[str, int]] = []
    if campaign.status == S.COMPLETED:
        final = [
            (label, campaign.final_counts[value])
            for value, label in Message.Status.choices
            if campaign.final_counts.get(value)
        ]
    return {
        **progress,
        "url": reverse("admin:campaigns_campaign_progress", args=(campaign.pk,)),
        "rows": [
            (value, label, progress["counts"][value]) for value, label in Message.Status.choices
        ],
        "polling": campaign.status in LIVE_STATUSES,
        "final": final,
        "final_cost": (
            money(campaign.final_cost, campaign.provider_account.currency)
            if campaign.status == S.COMPLETED and campaign.final_cost is not None
            else ""
        ),
    }


def when(moment: datetime, format_name: str = "DATETIME_FORMAT") -> str:
    return date_format(timezone.localtime(moment), format_name)


def describe_test(campaign: Campaign) -> str:
    """Whether, when, by whom and to what number a test went, and how it fared."""
    if campaign.test_sent_at is None:
        return "No test sent"
    who = campaign.test_sent_by.get_username() if campaign.test_sent_by else "(deleted user)"
    message = campaign.test_message
    if message is None:
        return f"Sent {when(campaign.test_sent_at)} by {who}"
    return format_html(
        "Sent {} by {} to {}: <strong>{}</strong>",
        when(campaign.test_sent_at),
        who,
        redact(message.phone),
        message.get_status_display().lower(),
    )


# Forms.


class LocalDateTimeField(forms.SplitDateTimeField):
    """A date and a time as typed, left naive: the form reads them in the campaign's zone."""

    def compress(self, data_list: Any) -> datetime | None:
        if not data_list:
            return None
        day, time = data_list
        if day in self.empty_values:
            raise ValidationError(self.error_messages["invalid_date"], code="invalid_date")
        if time in self.empty_values:
            raise ValidationError(self.error_messages["invalid_time"], code="invalid_time")
        return datetime.combine(day, time)


def in_zone(local: datetime, zone_name: str) -> datetime:
    """Wall-clock `local` in `zone_name`, as aware UTC; refused when a clock change skips
    that time or passes it twice, rather than guessing which one was meant."""
    aware = local.replace(tzinfo=zoneinfo.ZoneInfo(zone_name))
    if aware.utcoffset() != aware.replace(fold=1).utcoffset():
        raise ValidationError(
            "%(time)s happens twice or not at all in %(zone)s (the clocks change): "
            "pick another time.",
            code="ambiguous_time",
            params={"time": local.strftime("%Y-%m-%d %H:%M"), "zone": zone_name},
        )
    return aware.astimezone(UTC)


class CampaignForm(forms.ModelForm):
    scheduled_at = LocalDateTimeField(required=False, widget=AdminSplitDateTime)
    time_zone = forms.ChoiceField(
        choices=[(name, name) for name in sorted(zoneinfo.available_timezones())],
        initial="Europe/London",
        help_text=Campaign._meta.get_field("time_zone").help_text,
    )

    #: Left out of a post altogether (a script, a page from before they existed), these
    #: keep their value, as Django already does for optional fields with a default.
    KEEP_IF_OMITTED = ("time_zone", "brake_failure_rate", "brake_window")

    class Meta:
        model = Campaign
        fields = (
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
            "time_zone",
            "window_start",
            "window_end",
            "brake_failure_rate",
            "brake_window",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone = self.instance.time_zone
        if "scheduled_at" in self.fields:
            self.fields["scheduled_at"].help_text = (
                f"Local time in the campaign's time zone, below (now {zone}). "
                "Empty: send once approved."
            )
            if self.instance.scheduled_at:
                local = timezone.localtime(self.instance.scheduled_at, zoneinfo.ZoneInfo(zone))
                self.initial["scheduled_at"] = local.replace(tzinfo=None)
        if self.is_bound:
            self._keep_omitted_settings()

    def _keep_omitted_settings(self) -> None:
        omitted = [n for n in self.KEEP_IF_OMITTED if n in self.fields and n not in self.data]
        if omitted:
            data: Any = copy.copy(self.data)  # a QueryDict's copy is a mutable one
            for name in omitted:
                data[name] = str(getattr(self.instance, name))
            self.data = data

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        local = cleaned.get("scheduled_at")
        zone_name = cleaned.get("time_zone", self.instance.time_zone)
        if isinstance(local, datetime) and timezone.is_naive(local):
            try:
                cleaned["scheduled_at"] = in_zone(local, zone_name)
            except ValidationError as exc:
                self.add_error("scheduled_at", exc)
        return cleaned


class TestSendForm(forms.Form):
    phone = forms.CharField(
        label="Your phone number",
        max_length=40,
        help_text="International (+44 7911 123456) or national form.",
    )

    def clean_phone(self) -> str:
        return normalise_phone(self.cleaned_data["phone"])


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
    form = CampaignForm
    # The brake may be tightened or loosened while sending, not after the end; the rest
    # of the form is what submit freezes.
    frozen_fields = tuple(
        name
        for name in CampaignForm.Meta.fields
        if name not in ("brake_failure_rate", "brake_window")
    )
    # The brake may be tightened or loosened while sending, not after the end.
    brake_fields = ("brake_failure_rate", "brake_window")
    record_fields = (
        "status",
        "progress",
        "test_send",
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
        ("Schedule", {"fields": ("scheduled_at", "time_zone")}),
        (
            "Send window",
            {
                "fields": ("window_start", "window_end"),
                "description": "Quiet hours: messages wait for the window to open in each "
                "recipient's own time zone.",
            },
        ),
        ("Safety brake", {"fields": brake_fields}),
        ("Status", {"fields": record_fields}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown = (*self.record_fields, "scheduled_in_zone")
        if obj is None or obj.status in Campaign.EDITABLE_STATUSES:
            return shown
        if obj.status in FINAL_STATUSES:
            return (*shown, *self.frozen_fields, *self.brake_fields)
        return (*shown, *self.frozen_fields)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        editable = obj is None or (
            self.has_change_permission(request, obj)
            and "scheduled_at" not in self.get_readonly_fields(request, obj)
        )
        if editable:
            return self.fieldsets
        # Read only, the start is shown in the campaign's own zone, not the server's.
        return tuple(
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        "scheduled_in_zone" if field == "scheduled_at" else field
                        for field in options["fields"]
                    ),
                },
            )
            for name, options in self.fieldsets
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: a whole-row save would write back the status this
        # page was loaded with, undoing a transition made meanwhile (by the engine, say).
        columns = {f.name for f in Campaign._meta.concrete_fields}
        changed = [name for name in form.changed_data if name in columns]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        campaign = form.instance
        edited = campaign.compute_content_hash() != campaign.content_hash
        if campaign.status in (S.PENDING_APPROVAL, S.SCHEDULED) and edited:
            campaign.return_to_draft(by=request.user)
            messages.warning(
                request, "The campaign was changed after submit, so it is a draft again."
            )

    @admin.display(description="scheduled at")
    def scheduled_in_zone(self, campaign: Campaign) -> str:
        if campaign.scheduled_at is None:
            return "Once approved"
        local = timezone.localtime(campaign.scheduled_at, zoneinfo.ZoneInfo(campaign.time_zone))
        return f"{date_format(local, 'DATETIME_FORMAT')} ({campaign.time_zone})"

    @admin.display(description="test send")
    def test_send(self, campaign: Campaign) -> str:
        return describe_test(campaign) if campaign.pk else "-"

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
        view = self.admin_site.admin_view
        own = [
            path(
                "<int:pk>/transition/<str:action>/",
                view(self.transition_view),
                name="campaigns_campaign_transition",
            ),
            path(
                "<int:pk>/progress/", view(self.progress_view), name="campaigns_campaign_progress"
            ),
            path("<int:pk>/test/", view(self.test_send_view), name="campaigns_campaign_test"),
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
            extra_context["preview"] = preview_of(campaign)
            if campaign.status != S.DRAFT:
                extra_context["live"] = live_counts_of(campaign)
            if self._may_send_test(request, campaign):
                extra_context["test_send_url"] = reverse(
                    "admin:campaigns_campaign_test", args=(campaign.pk,)
                )
        return super().change_view(request, object_id, form_url, extra_context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return JsonResponse(progress_of(campaign))

    # Test send: one message to the marketer's own phone, before submitting.

    def _may_send_test(self, request: HttpRequest, campaign: Campaign) -> bool:
        return campaign.status == S.DRAFT and self.has_change_permission(request, campaign)

    def test_send_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(
            Campaign.objects.select_related("provider_account", "template", "test_message"), pk=pk
        )
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        form = TestSendForm(
            request.POST or None, initial={"phone": _own_test_phone(request, campaign)}
        )
        if request.method == "POST" and form.is_valid():
            try:
                message = send_test(campaign, form.cleaned_data["phone"], by=request.user)
            except (TransitionNotAllowed, ValidationError) as exc:
                form.add_error(None, error_text(exc))
            else:
                # Redirect, so reloading the result page does not send another test.
                return HttpResponseRedirect(f"{request.path}?sent={message.pk}")
        return TemplateResponse(
            request,
            "admin/campaigns/campaign/test_send.html",
            self._test_send_context(request, campaign, form),
        )

    def _test_send_context(
        self, request: HttpRequest, campaign: Campaign, form: TestSendForm
    ) -> dict[str, Any]:
        contact = first_recipient(campaign)
        body = render(campaign.message_body, contact.template_fields() if contact else {})
        sent = request.GET.get("sent", "")
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Send a test: {campaign}",
            "campaign": campaign,
            "form": form,
            "may_send": campaign.status == S.DRAFT,
            "body": highlight(body),
            "recipient": (contact.first_name or "the first recipient") if contact else "",
            "sent": campaign.test_message if sent == str(campaign.test_message_id) else None,
            "sent_to": redact(campaign.test_message.phone) if campaign.test_message else "",
            "change_url": reverse("admin:campaigns_campaign_change", args=(campaign.pk,)),
        }

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
            campaign.act(action.name, request.user, note)
        except (TransitionNotAllowed, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return True
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
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
                campaign.act(action, request.user)
                moved += 1
            except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
                refused.append(f"{campaign}: {error_text(exc)}")
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


def _own_test_phone(request: HttpRequest, campaign: Campaign) -> str:
    """The number this user sent the campaign's last test to, to send the next one."""
    message = campaign.test_message
    return message.phone if message and campaign.test_sent_by_id == request.user.pk else ""


# The approvers' queue: campaigns waiting for approval, approved or rejected in one click.


@admin.register(PendingApproval)
class PendingApprovalAdmin(admin.ModelAdmin):
    list_display = (
        "campaign",
        "submitted_by",
        "submitted_at",
        "sendable",
        "segments",
        "estimated_cost",
        "test_sent",
        "decision",
    )
    list_display_links = None
    list_select_related = ("submitted_by", "test_message")
    ordering = ("submitted_at", "pk")
    search_fields = ("name",)
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[PendingApproval]:
        return super().get_queryset(request).filter(status=S.PENDING_APPROVAL)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        may_approve = request.user.has_perm("campaigns.approve_campaign")
        return may_approve and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The campaign's own page is where it is looked at in full."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=object_id)
        return HttpResponseRedirect(_campaign_url(campaign))

    @admin.display(description="campaign", ordering="name")
    def campaign(self, campaign: Campaign) -> str:
        return format_html('<a href="{}">{}</a>', _campaign_url(campaign), campaign.name)

    @admin.display(description="sendable")
    def sendable(self, campaign: Campaign) -> Any:
        return campaign.estimate.get("sendable", "-")

    @admin.display(description="segments")
    def segments(self, campaign: Campaign) -> Any:
        return campaign.estimate.get("segments", "-")

    @admin.display(description="estimated cost")
    def estimated_cost(self, campaign: Campaign) -> str:
        figures = campaign.estimate
        if "cost" not in figures:
            return "-"
        return money(figures["cost"], figures.get("currency", ""))

    @admin.display(description="test sent")
    def test_sent(self, campaign: Campaign) -> str:
        if campaign.test_sent_at is None:
            return "no"
        status = campaign.test_message.get_status_display().lower() if campaign.test_message else ""
        sent_at = when(campaign.test_sent_at, "SHORT_DATETIME_FORMAT")
        return f"yes, {sent_at}" + (f" ({status})" if status else "")

    @admin.display(description="decision")
    def decision(self, campaign: Campaign) -> str:
        # The changelist is one big form, and forms do not nest: these controls belong to
        # the per-row forms printed after it (change_list.html), through form="...".
        return format_html(
            '<button type="submit" form="approve-{pk}" class="button default approve-button">'
            "Approve</button>"
            '<span class="reject-row">'
            '<input type="text" name="reason" form="reject-{pk}" required class="reject-reason" '
            'placeholder="Reason" aria-label="Reason for rejecting {name}"> '
            '<button type="submit" form="reject-{pk}" class="button reject-button">Reject</button>'
            "</span>",
            pk=campaign.pk,
            name=campaign.name,
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra_context = {"title": "Campaigns awaiting approval", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path(
                "<int:pk>/approve/",
                view(self.decide_view),
                {"decision": "approve"},
                name="campaigns_pendingapproval_approve",
            ),
            path(
                "<int:pk>/reject/",
                view(self.decide_view),
                {"decision": "reject"},
                name="campaigns_pendingapproval_reject",
            ),
        ]
        return own + super().get_urls()

    def decide_view(self, request: HttpRequest, pk: int, decision: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("campaigns.approve_campaign"):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=pk)
        queue_url = reverse("admin:campaigns_pendingapproval_changelist")
        seen = request.POST.get("content_hash", "")
        if campaign.status == S.PENDING_APPROVAL and seen != campaign.content_hash:
            # Edited and submitted again since the queue was shown: decide on what was seen.
            self.message_user(
                request,
                f"“{campaign}” was changed after this page was loaded: look at it again.",
                messages.WARNING,
            )
            return HttpResponseRedirect(queue_url)
        try:
            if decision == "approve":
                campaign.approve(by=request.user)
            else:
                campaign.reject(by=request.user, reason=request.POST.get("reason", ""))
        except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(queue_url)
        campaign.refresh_from_db()
        self.message_user(request, _decided(campaign, decision), messages.SUCCESS)
        return HttpResponseRedirect(queue_url)


def _campaign_url(campaign: Campaign) -> str:
    return reverse("admin:campaigns_campaign_change", args=(campaign.pk,))


def _decided(campaign: Campaign, decision: str) -> str:
    if decision == "approve":
        return format_html(
            "“{}” approved: it is now <strong>{}</strong>.",
            campaign,
            campaign.get_status_display().lower(),
        )
    return format_html("“{}” rejected: it is a draft again, with your reason.", campaign)
