"""Dashboard pages: the campaign builder (write, preview, test, submit) for marketers."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from campaigns.models import Campaign, TransitionNotAllowed, unknown_variables
from campaigns.presenters import code_point, error_text, money, test_allowance
from campaigns.preview import estimate
from campaigns.testsend import send_test
from contacts.models import Contact
from contacts.phones import redact
from dashboard.access import can_build
from dashboard.forms import BuilderForm, TestSendForm
from messaging.models import Message, ProviderAccount
from messaging.rendering import encoding_of, ucs2_characters

View = Callable[..., HttpResponse]


def builder_required(view: View) -> View:
    """Signed in (else to the login page) and allowed to build campaigns (else 403)."""

    @login_required
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_build(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


@builder_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    return _build(request, Campaign(created_by_id=request.user.pk))


@builder_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if campaign.status != Campaign.Status.DRAFT:
        messages.warning(request, _not_a_draft(campaign))
        return redirect("dashboard:campaign", pk=campaign.pk)
    return _build(request, campaign)


def _not_a_draft(campaign: Campaign) -> str:
    label = campaign.get_status_display().lower()
    return f"“{campaign}” is {label}: only drafts can be edited."


def _build(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    """The builder page: on POST save the draft, then submit it or go to the test send."""
    form = BuilderForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = _save_draft(form, by=request.user)
        except TransitionNotAllowed:
            messages.error(request, _not_a_draft(campaign))
            return redirect("dashboard:campaign", pk=campaign.pk)
        action = request.POST.get("action", "save")
        if action == "test":
            return redirect("dashboard:campaign_test", pk=campaign.pk)
        if action != "submit":
            messages.success(request, f"“{campaign}” saved as a draft.")
            return redirect("dashboard:campaign", pk=campaign.pk)
        try:
            campaign.submit(by=request.user)
        except (ValidationError, TransitionNotAllowed) as exc:
            form = BuilderForm(request.POST, instance=campaign)
            form.is_valid()
            form.add_error(None, f"Saved as a draft, not submitted. {error_text(exc)}")
        else:
            messages.success(request, f"“{campaign}” submitted for approval.")
            return redirect("dashboard:campaign", pk=campaign.pk)
    return render(request, "dashboard/builder.html", _page(form, campaign))


def _save_draft(form: BuilderForm, by: Any) -> Campaign:
    """Save what the form holds, unless someone submitted the campaign meanwhile; `by`
    becomes one of its authors if that changed what an approval binds."""
    campaign: Campaign = form.instance
    with transaction.atomic():
        if campaign.pk is not None:
            status = (
                Campaign.objects.select_for_update()
                .filter(pk=campaign.pk)
                .values_list("status", flat=True)
                .first()
            )
            if status != Campaign.Status.DRAFT:
                raise TransitionNotAllowed(f"Cannot edit a campaign that is {status}.")
        before = campaign.saved_content_hash()  # read under the lock: no edit in between
        saved: Campaign = form.save()
        saved.note_authors(by, before)
    return saved


def _page(form: BuilderForm, campaign: Campaign) -> dict[str, Any]:
    return {
        "title": f"Edit “{campaign}”" if campaign.pk else "New campaign",
        "nav": "new" if campaign.pk is None else "",
        "form": form,
        "campaign": campaign,
        "preview_url": reverse("dashboard:campaign_preview"),
    }


@builder_required
@require_POST
def campaign_preview(request: HttpRequest) -> JsonResponse:
    """What the form as typed would send: samples, segments, counts and cost, as JSON."""
    form = BuilderForm(request.POST)
    form.is_valid()  # only the fields the preview reads need to be valid
    cleaned = form.cleaned_data
    campaign = Campaign(
        channel=cleaned.get("channel") or Campaign._meta.get_field("channel").get_default(),
        provider_account=cleaned.get("provider_account") or ProviderAccount(),
        template=cleaned.get("template"),
        # A body with unknown variables fails the model's clean; the preview still shows it.
        body=cleaned.get("body", request.POST.get("body", "")),
        # The audience rule's other inputs: quiet hours and when it starts.
        scheduled_at=cleaned.get("scheduled_at"),
        time_zone=cleaned.get("time_zone") or Campaign._meta.get_field("time_zone").get_default(),
        window_start=cleaned.get("window_start"),
        window_end=cleaned.get("window_end"),
    )
    if None in (campaign.window_start, campaign.window_end) or (
        campaign.window_start == campaign.window_end
    ):
        campaign.window_start = campaign.window_end = None  # no window (yet) as typed
    # An unsaved campaign has no many-to-many rows to read its audience from: the preview
    # counts the audience chosen on the form instead.
    audience = Contact.objects.in_audience(
        cleaned.get("groups", ()), cleaned.get("tags", ()), cleaned.get("exclude_groups", ())
    )
    has_account = "provider_account" in cleaned
    return JsonResponse(preview_json(campaign, has_account=has_account, contacts=audience))


def preview_json(
    campaign: Campaign, has_account: bool = True, contacts: QuerySet[Contact] | None = None
) -> dict[str, Any]:
    figures = estimate(campaign, contacts=contacts)
    body = campaign.message_body
    errors = []
    unknown = unknown_variables(body)
    if unknown:
        names = ", ".join("{{" + name + "}}" for name in unknown)
        errors.append(f"No contact has {names}: use a contact field or an imported column.")
    if not body.strip():
        errors.append("Write a message or pick a template.")
    if not has_account:
        errors.append("Choose a provider account to see the cost.")
    return {
        "audience": figures.audience,
        "queued": figures.queued,
        "skipped": figures.skipped,
        "skipped_labels": dict(Message.SkipReason.choices),
        "opted_out": figures.opted_out,
        "sendable": figures.sendable,
        "segments": figures.segments,
        "cost": money(figures.cost, figures.currency) if has_account else "",
        "encoding": encoding_of(body),
        "ucs2_characters": [
            {"character": c, "code_point": code_point(c)} for c in figures.ucs2_characters
        ],
        "body_ucs2_characters": ucs2_characters(body),
        "samples": [
            {
                "contact": sample.contact,
                "body": sample.body,
                "encoding": sample.encoding,
                "segments": sample.segments,
                "ucs2_characters": ucs2_characters(sample.body),
            }
            for sample in figures.samples
        ],
        "errors": errors,
    }


@builder_required
def campaign_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Send one test of a draft to the user's own phone, and show how it went."""
    campaign = get_object_or_404(Campaign.objects.select_related("provider_account"), pk=pk)
    form = TestSendForm(request.POST or None, user=request.user)
    result: Message | None = None
    if request.method == "POST" and form.is_valid():
        try:
            result = send_test(campaign, form.cleaned_data["number"].phone, by=request.user)
        except (ValidationError, TransitionNotAllowed, PermissionDenied) as exc:
            form.add_error(None, error_text(exc))
    context = {
        "title": f"Test send of “{campaign}”",
        "campaign": campaign,
        "form": form,
        "result": result,
        "redacted_phone": redact(result.phone) if result else "",
        "allowance": test_allowance(request.user),
    }
    return render(request, "dashboard/test_send.html", context)


urlpatterns = [
    path("campaigns/new/", campaign_new, name="campaign_new"),
    path("campaigns/<int:pk>/edit/", campaign_edit, name="campaign_edit"),
    path("campaigns/preview/", campaign_preview, name="campaign_preview"),
    path("campaigns/<int:pk>/test/", campaign_test, name="campaign_test"),
]
