"""Campaigns in the admin: the marketer's page (preview, test send, live counts), buttons
that call the state machine's methods, and the approvers' queue."""

import zoneinfo
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, QuerySet
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

from audit.admin import ReadOnlyAdmin, ReadOnlyInline
from campaigns.actions import (
    ACTIONS,
    Action,
    available_to,
    may_take,
    withheld_from,
    withheld_reason,
)
from campaigns.content import Content
from campaigns.forms import (
    CampaignForm,
    SegmentForm,
    TestNumberForm,
    TestSendForm,
    TransitionForm,
)
from campaigns.frequency import may_override
from campaigns.models import (
    AUDIENCE_FIELDS,
    Campaign,
    CampaignTransition,
    ChangedSinceShown,
    MessageTemplate,
    PendingApproval,
    TestNumber,
    TransitionNotAllowed,
    message_counts,
)
from campaigns.presenters import (
    FINAL_STATUSES,
    cap_text,
    decided_text,
    describe_test,
    error_text,
    highlight,
    live_counts_of,
    money,
    preview_of,
    progress_of,
    test_allowance,
    when,
)
from campaigns.segment_sizes import segment_size
from campaigns.segments import Segment, SegmentInUse, in_use_text, waiting_text
from campaigns.testsend import first_recipient, sample_fields, send_test
from campaigns.variants import figures as variant_figures
from contacts.phones import redact
from messaging.models import Message


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "channel", "updated_at")
    list_filter = ("channel",)
    search_fields = ("name", "body")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Whoever changes a campaign's text this way is one of its authors (four eyes).
        obj.save_edit(by=request.user)
        # The build holds them (campaigns.approval); say so now, not when they were due.
        waiting = obj.campaign_set.filter(
            status__in=(S.PENDING_APPROVAL, S.SCHEDULED), body=""
        ).count()
        if change and waiting:
            self.message_user(
                request,
                f"{waiting} submitted or approved campaign(s) use this template: they will "
                "not send the new text until an approver approves them again.",
                messages.WARNING,
            )


S = Campaign.Status
APPROVE = ACTIONS["approve"]


class TransitionInline(ReadOnlyInline):
    model = CampaignTransition
    fields = ("at", "action", "from_status", "to_status", "actor", "note")
    verbose_name_plural = "history"

    @admin.display(description="by")
    def actor(self, transition: CampaignTransition) -> str:
        if transition.by_id is None:
            return "Herald (engine)"
        return transition.by.get_username() if transition.by else "(deleted user)"


@admin.register(CampaignTransition)
class CampaignTransitionAdmin(ReadOnlyAdmin):
    """The audit log of every campaign's state changes."""

    list_display = ("at", "campaign", "action", "from_status", "to_status", "by", "note")
    list_filter = ("action", "to_status")
    list_select_related = ("campaign", "by")
    search_fields = ("campaign__name", "note")
    date_hierarchy = "at"


BulkAction = Callable[["CampaignAdmin", HttpRequest, QuerySet[Campaign]], None]


def bulk_action(chosen: Action) -> BulkAction:
    """The changelist action taking `chosen` on each selected campaign, as it permits."""

    def take(
        modeladmin: "CampaignAdmin", request: HttpRequest, queryset: QuerySet[Campaign]
    ) -> None:
        modeladmin.take_on_each(request, queryset, chosen)

    take.__name__ = f"{chosen.name}_selected"
    # An admin action's permission names a has_<codename>_permission method of the admin:
    # "campaigns.change_campaign" -> has_change_permission, approve -> has_approve_permission.
    codename = chosen.permission.partition(".")[2].removesuffix("_campaign")
    described = admin.action(
        description=f"{chosen.label} (selected campaigns)", permissions=[codename]
    )
    return described(take)


#: Taken on many campaigns at once: the actions that ask for no reason or confirmation.
BULK_ACTIONS = tuple(
    bulk_action(a) for a in ACTIONS.values() if not (a.reason_required or a.confirmation)
)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "channel", "provider_account", "submitted_by", "approved_by")
    list_filter = ("status", "channel")
    list_select_related = ("provider_account", "submitted_by", "approved_by")
    search_fields = ("name",)
    filter_horizontal = AUDIENCE_FIELDS
    radio_fields = {"frequency_cap": admin.VERTICAL}
    inlines = (TransitionInline,)
    actions = (*BULK_ACTIONS, "duplicate_selected")
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
    # Changed only by those who may override the house cap (campaigns.frequency).
    cap_fields = CampaignForm.CAP_FIELDS
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
        ("Content", {"fields": ("template", "body", "track_links", "link_utm")}),
        (
            "A/B variants",
            {
                "fields": (
                    "variant_bodies",
                    "ab_mode",
                    "ab_split",
                    "ab_test_share",
                    "ab_test_hours",
                    "ab_winner_by",
                    "ab_result",
                ),
                "description": "Up to three more texts; each recipient gets one for good. "
                "All are previewed and approved together.",
            },
        ),
        (
            "Audience",
            {
                "fields": AUDIENCE_FIELDS,
                "description": "Anyone in a chosen group, with a chosen tag or matching a "
                "chosen segment, minus anyone in an excluded one.",
            },
        ),
        ("Schedule", {"fields": ("scheduled_at", "time_zone")}),
        (
            "Send window",
            {
                "fields": ("window_start", "window_end"),
                "description": "Quiet hours: messages wait for the window to open in each "
                "recipient's own time zone.",
            },
        ),
        (
            "Frequency cap",
            {
                "fields": cap_fields,
                "description": "At most so many marketing messages to each contact in any "
                "rolling number of days; contacts messaged that often already are skipped.",
            },
        ),
        ("Safety brake", {"fields": brake_fields}),
        ("Status", {"fields": record_fields}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown: tuple[str, ...] = (
            *self.record_fields,
            "scheduled_in_zone",
            "cap_in_force",
            "ab_result",
        )
        if not may_override(request.user):
            shown = (*shown, *self.cap_fields)
        if obj is None or obj.status in Campaign.EDITABLE_STATUSES:
            return shown
        if obj.status in FINAL_STATUSES:
            return tuple(dict.fromkeys((*shown, *self.frozen_fields, *self.brake_fields)))
        return tuple(dict.fromkeys((*shown, *self.frozen_fields)))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = self.get_readonly_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            readonly = (*readonly, "scheduled_at", *self.cap_fields)
        # Read only, some columns read better as one line: the start in the campaign's own
        # zone (not the server's), and the cap in force rather than its three columns.
        swap: dict[str, tuple[str, ...]] = {}
        if "scheduled_at" in readonly:
            swap["scheduled_at"] = ("scheduled_in_zone",)
        if "frequency_cap" in readonly:
            swap.update(frequency_cap=("cap_in_force",), cap_messages=(), cap_days=())
        if not swap:
            return self.fieldsets
        return tuple(
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        shown
                        for field in options["fields"]
                        for shown in swap.get(str(field), (str(field),))
                    ),
                },
            )
            for name, options in self.fieldsets
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # What the approval bound before this edit, for save_related to compare (four eyes).
        form.hash_before = obj.saved_content_hash()
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
        campaign.note_authors(request.user, form.hash_before)
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

    @admin.display(description="frequency cap")
    def cap_in_force(self, campaign: Campaign) -> str:
        return cap_text(campaign)

    @admin.display(description="test send")
    def test_send(self, campaign: Campaign) -> str:
        return describe_test(campaign) if campaign.pk else "-"

    @admin.display(description="A/B result")
    def ab_result(self, campaign: Campaign) -> str:
        """Each variant's messages, delivery and click-through rates, and a test's winner."""
        if not campaign.pk or not campaign.variant_bodies:
            return "-"
        found = variant_figures(campaign)
        lines = [
            f"{label}: {f['messages']} messages, {f['delivery_rate']:.1%} delivered, "
            f"{f['clicks']['unique']} clicked ({f['click_through_rate']:.1%})"
            for label, f in found.items()
        ]
        if campaign.ab_winner:
            lines.append(f"Winner {campaign.ab_winner}: {campaign.ab_decision.get('why', '')}")
        elif campaign.waiting_for_winner and campaign.ab_test_ends_at:
            lines.append(f"Winner picked at {when(campaign.ab_test_ends_at)}")
        return "; ".join(lines)

    @admin.display(description="messages")
    def progress(self, campaign: Campaign) -> str:
        if campaign.pk is None:
            return "-"
        counts = message_counts([campaign.pk])[campaign.pk]
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

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        campaign = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if campaign is not None:
            extra_context["transition_actions"] = [
                (a, reverse("admin:campaigns_campaign_transition", args=(campaign.pk, a.name)))
                for a in available_to(request.user, campaign)
            ]
            extra_context["withheld"] = withheld_from(request.user, campaign)
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
            request.POST or None, user=request.user, variants=campaign.variant_labels
        )
        if request.method == "POST" and form.is_valid():
            try:
                phone, variant = form.cleaned_data["number"].phone, form.cleaned_data.get("variant")
                message = send_test(campaign, phone, by=request.user, variant=variant or "A")
            except (TransitionNotAllowed, ValidationError, PermissionDenied) as exc:
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
        # Rendered as the test itself is (campaigns.content): the same fields, the same fallbacks.
        body = Content.of(campaign).render(sample_fields(campaign)).body
        sent = request.GET.get("sent", "")
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Send a test: {campaign}",
            "campaign": campaign,
            "form": form,
            "may_send": campaign.status == S.DRAFT,
            "allowance": test_allowance(request.user),
            "body": highlight(body),
            "recipient": (contact.first_name or "the first recipient") if contact else "",
            "sent": campaign.test_message if sent == str(campaign.test_message_id) else None,
            "sent_to": redact(campaign.test_message.phone) if campaign.test_message else "",
            "change_url": reverse("admin:campaigns_campaign_change", args=(campaign.pk,)),
        }

    def transition_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        chosen = ACTIONS.get(action)
        if chosen is None or not may_take(request.user, chosen):
            raise PermissionDenied
        change_url = reverse("admin:campaigns_campaign_change", args=(campaign.pk,))
        form = TransitionForm(request.POST or None, action=chosen)
        confirmed = request.method == "POST" and form.is_valid()
        note = form.cleaned_data.get("note", "") if confirmed else ""
        if confirmed and self._perform(request, chosen, campaign, note):
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

    def take_on_each(
        self, request: HttpRequest, queryset: QuerySet[Campaign], chosen: Action
    ) -> None:
        moved, refused = 0, []
        for campaign in queryset:
            try:
                campaign.act(chosen.name, request.user)
                moved += 1
            except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
                refused.append(f"{campaign}: {error_text(exc)}")
        if moved:
            self.message_user(request, f"{chosen.label}: {moved} campaign(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Duplicate as new drafts (selected campaigns)", permissions=["add"])
    def duplicate_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        """Campaign.duplicate on each: a draft "… (copy)" with the same content and audience."""
        made, refused = [], []
        for campaign in queryset.order_by("pk"):
            try:
                made.append(campaign.duplicate(request.user))
            except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
                refused.append(f"{campaign}: {error_text(exc)}")
        if made:
            names = ", ".join(copy.name for copy in made)
            self.message_user(request, f"New drafts: {names}.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.approve_campaign")


# The approvers' queue: campaigns waiting for approval, approved or rejected in one click.


@admin.register(PendingApproval)
class PendingApprovalAdmin(ReadOnlyAdmin):
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
        pending = super().get_queryset(request).filter(status=S.PENDING_APPROVAL)
        return pending.prefetch_related("authors")  # four eyes, asked of every row

    def get_list_display(self, request: HttpRequest) -> Any:
        # The decision column answers for the user looking: four eyes may withhold Approve.
        def decision(campaign: Campaign) -> str:
            return self.decision(campaign, withheld_reason(request.user, campaign, APPROVE))

        decision.short_description = "decision"  # type: ignore[attr-defined]
        return (*self.list_display[:-1], decision)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        may_approve = request.user.has_perm("campaigns.approve_campaign")
        return may_approve and super().has_view_permission(request, obj)

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
    def decision(self, campaign: Campaign, withheld: str = "") -> str:
        # The changelist is one big form, and forms do not nest: these controls belong to
        # the per-row forms printed after it (change_list.html), through form="...".
        approve = (
            format_html('<span class="withheld">{}</span> ', withheld)
            if withheld
            else format_html(
                '<button type="submit" form="approve-{}" class="button default approve-button">'
                "Approve</button>",
                campaign.pk,
            )
        )
        return format_html(
            "{approve}"
            '<span class="reject-row">'
            '<input type="text" name="reason" form="reject-{pk}" required class="reject-reason" '
            'placeholder="Reason" aria-label="Reason for rejecting {name}"> '
            '<button type="submit" form="reject-{pk}" class="button reject-button">Reject</button>'
            "</span>",
            approve=approve,
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
        shown, reason = request.POST.get("content_hash", ""), request.POST.get("reason", "")
        try:
            campaign.decide(decision, request.user, shown, reason)
        except ChangedSinceShown as exc:
            self.message_user(request, str(exc), messages.WARNING)
        except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
        else:
            self.message_user(request, decided_text(campaign, decision), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_pendingapproval_changelist"))


def _campaign_url(campaign: Campaign) -> str:
    return reverse("admin:campaigns_campaign_change", args=(campaign.pk,))


@admin.register(TestNumber)
class TestNumberAdmin(admin.ModelAdmin):
    """Staff's own phones, the only numbers campaign tests go to. Managed by whoever holds
    the test number permissions (no role has them by default), never for oneself."""

    form = TestNumberForm
    list_display = ("user", "label", "number", "added_by", "created_at")
    list_select_related = ("user", "added_by")
    search_fields = ("user__username", "label", "=phone")
    fields = ("user", "phone", "label")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form_class: Any = super().get_form(request, obj, change, **kwargs)
        # A class made for this request alone (modelform_factory), so this is no shared state.
        form_class.added_by = request.user
        return form_class

    @admin.display(description="number", ordering="phone")
    def number(self, test_number: TestNumber) -> str:
        return redact(test_number.phone)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.added_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Segments: rules as text, one a line. One used by a campaign is not deleted: the
    delete page lists the campaigns that use it instead."""

    form = SegmentForm
    list_display = ("name", "match", "rules_summary", "size", "used_by")
    search_fields = ("name",)
    fields = ("name", "match_any", "rules", "created_by", "created_at", "updated_at")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Segment]:
        using = Campaign.objects.only("id", "name").order_by("name")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("campaigns", queryset=using), Prefetch("excluded_from", queryset=using)
            )
        )

    @admin.display(description="contacts match", ordering="match_any")
    def match(self, segment: Segment) -> str:
        return "any rule" if segment.match_any else "all rules"

    @admin.display(description="rules")
    def rules_summary(self, segment: Segment) -> str:
        text = "; ".join(segment.rules)
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="size")
    def size(self, segment: Segment) -> int:
        return segment_size(segment)

    @admin.display(description="used by")
    def used_by(self, segment: Segment) -> str:
        using = {c.pk: c for c in (*segment.campaigns.all(), *segment.excluded_from.all())}
        links = ((_campaign_url(c), c.name) for c in using.values())
        return format_html_join(", ", '<a href="{}">{}</a>', links) or "—"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Whoever changes the rules of a campaign's segment is one of its authors (four eyes).
        waiting = obj.save_by(request.user)
        if waiting:
            self.message_user(request, waiting_text(waiting), messages.WARNING)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """The admin's own list, with each campaign using a segment as a protected object:
        the delete page names them and offers no Yes (for one segment or many)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for segment in objs:
            used = segment.used_by()
            if not used:
                continue
            protected.append(in_use_text(segment, used))
            for campaign in Campaign.objects.filter(pk__in=used).only("id", "name"):
                protected.append(
                    format_html(
                        'Campaign <a href="{}">{}</a> uses segment “{}”',
                        _campaign_url(campaign),
                        campaign.name,
                        segment.name,
                    )
                )
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            obj.delete_by(request.user)
        except SegmentInUse as exc:  # a campaign took it up after the page was shown
            self.message_user(request, error_text(exc), messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        # One by one through Segment.delete: a bulk delete would skip its in-use check and
        # take the segment out of the campaigns using it.
        for segment in queryset:
            self.delete_model(request, segment)
