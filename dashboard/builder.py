"""Dashboard pages: the campaign builder (write, preview, test, submit) for marketers."""

import re
import secrets
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from campaigns.actions import OPERATIONS
from campaigns.audience import AudienceDefinition
from campaigns.models import Campaign, TransitionNotAllowed, unknown_variables
from campaigns.presenters import (
    cap_text,
    code_point,
    error_text,
    money,
    part_text,
    rest_text,
    test_allowance,
)
from campaigns.preview import estimate, missing_text
from campaigns.testsend import send_test
from contacts.phones import redact
from dashboard.access import can_build
from dashboard.forms import BuilderForm, TestSendForm
from messaging.links import link_base
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


#: A builder page's one-time token, as `secrets.token_urlsafe(16)` writes it.
FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
#: Where an edit may start from (the operations table's); a pending campaign goes back to
#: draft when saved.
EDITABLE = OPERATIONS["edit"].statuses
BACK_TO_DRAFT = "back_to_draft"


@builder_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    """A new campaign, its page carrying a one-time token (also in its address, `?form=`):
    posting that page twice, or coming back to it, finds the campaign it made instead of
    making another."""
    token = request.POST.get("form_token") or request.GET.get("form", "")
    if not FORM_TOKEN.fullmatch(token):
        # A post from elsewhere (a script, an old page) has no token to keep; a new page
        # gets one, which builder.js also puts in its address, for the back button.
        token = "" if request.method == "POST" else secrets.token_urlsafe(16)
    # One look at who holds the token: two (mine? anyone's?) would let the page's other
    # post, committed in between, pass as someone else's and make a second campaign.
    holder = Campaign.objects.filter(form_token=token).first() if token else None
    if holder is not None and holder.created_by_id == request.user.pk:
        return _already_made(request, holder)
    if holder is not None:
        token = secrets.token_urlsafe(16)  # someone else's page: theirs is none of ours
    campaign = Campaign(created_by_id=request.user.pk, form_token=token or None)
    try:
        return _build(request, campaign)
    except IntegrityError:
        # The same page posted twice at once: the other request made it first.
        made = _made_from(token, request.user)
        if made is None:
            raise
        return _already_made(request, made)


def _made_from(token: str, user: Any) -> Campaign | None:
    if not token:
        return None
    return Campaign.objects.filter(form_token=token, created_by_id=user.pk).first()


def _already_made(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    """The page's campaign exists (a second click, the back button): go to it, saying so."""
    if request.method == "POST":
        messages.info(
            request,
            f"“{campaign}” was already saved from this page, so no second campaign was made. "
            "Here it is; edit it to change anything.",
        )
        return redirect("dashboard:campaign", pk=campaign.pk)
    if campaign.status in EDITABLE:
        messages.info(request, f"“{campaign}” was saved from this page already: here it is.")
        return redirect("dashboard:campaign_edit", pk=campaign.pk)
    messages.info(request, f"“{campaign}” was already saved from this page.")
    return redirect("dashboard:campaign", pk=campaign.pk)


@builder_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if campaign.status not in EDITABLE:
        messages.warning(request, _not_editable(campaign))
        return redirect("dashboard:campaign", pk=campaign.pk)
    return _build(request, campaign)


def _not_editable(campaign: Campaign) -> str:
    label = campaign.get_status_display().lower()
    return (
        f"“{campaign}” is {label}: only drafts (rejected ones too) and campaigns awaiting "
        "approval can be edited."
    )


class NeedsBackToDraft(TransitionNotAllowed):
    """A pending campaign's edit, posted without saying it may go back to draft."""


def _build(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    """The builder page: on POST save the draft, then submit it or go to the test send."""
    form = BuilderForm(request.POST or None, instance=campaign, user=request.user)
    if request.method == "POST" and _submitted_already(request, form, campaign):
        messages.info(request, f"“{campaign}” is already submitted for approval, as it is.")
        return redirect("dashboard:campaign", pk=campaign.pk)
    if request.method == "POST" and form.is_valid():
        back_to_draft = request.POST.get(BACK_TO_DRAFT) == "yes"
        try:
            campaign = _save_draft(form, by=request.user, back_to_draft=back_to_draft)
        except TransitionNotAllowed as exc:
            # Submitted, approved or sent meanwhile: nothing saved, and nothing typed lost.
            form.add_error(None, _refused_edit(exc, campaign))
            return render(request, "dashboard/builder.html", _page(form, campaign), status=409)
        action = request.POST.get("action", "save")
        if action == "test":
            return redirect("dashboard:campaign_test", pk=campaign.pk)
        if action != "submit":
            messages.success(request, f"“{campaign}” saved as a draft.")
            return redirect("dashboard:campaign", pk=campaign.pk)
        try:
            campaign.submit(by=request.user)
        except (ValidationError, TransitionNotAllowed) as exc:
            form = BuilderForm(request.POST, instance=campaign, user=request.user)
            form.is_valid()
            form.add_error(None, f"Saved as a draft, not submitted. {error_text(exc)}")
        else:
            messages.success(request, f"“{campaign}” submitted for approval.")
            return redirect("dashboard:campaign", pk=campaign.pk)
    return render(request, "dashboard/builder.html", _page(form, campaign))


def _submitted_already(request: HttpRequest, form: BuilderForm, campaign: Campaign) -> bool:
    """A second "submit" of a page whose campaign the first one submitted, unchanged."""
    return (
        request.POST.get("action") == "submit"
        and campaign.status == Campaign.Status.PENDING_APPROVAL
        and request.POST.get(BACK_TO_DRAFT) != "yes"
        and not form.has_changed()
    )


def _refused_edit(exc: TransitionNotAllowed, campaign: Campaign) -> str:
    if isinstance(exc, NeedsBackToDraft):
        return (
            f"“{campaign}” is awaiting approval: saving sends it back to draft, to be "
            "submitted and approved again. Tick the box below to save it anyway."
        )
    return f"Not saved: {exc} What you typed is below; copy it into a new campaign if needed."


def _save_draft(form: BuilderForm, by: Any, back_to_draft: bool = False) -> Campaign:
    """Save what the form holds, unless someone submitted the campaign meanwhile (a pending
    one goes back to draft first, when `back_to_draft`); `by` becomes one of its authors if
    that changed what an approval binds."""
    campaign: Campaign = form.instance
    with transaction.atomic():
        if campaign.pk is not None:
            status = (
                Campaign.objects.select_for_update()
                .filter(pk=campaign.pk)
                .values_list("status", flat=True)
                .first()
            )
            if status == Campaign.Status.PENDING_APPROVAL and not back_to_draft:
                raise NeedsBackToDraft("It is awaiting approval.")
            if status == Campaign.Status.PENDING_APPROVAL:
                # Another copy: return_to_draft reloads itself, which would drop the form's values.
                Campaign.objects.get(pk=campaign.pk).return_to_draft(by, note="edited")
            elif status != Campaign.Status.DRAFT:
                label = Campaign.Status(status).label.lower() if status else "deleted"
                raise TransitionNotAllowed(f"It is {label} now.")
            _take_saved_state(campaign, form)
        before = campaign.saved_content_hash()  # read under the lock: no edit in between
        saved: Campaign = form.save()
        saved.note_authors(by, before)
    return saved


def _take_saved_state(campaign: Campaign, form: BuilderForm) -> None:
    """Read, under the lock, every column the form does not set (status, approval, test,
    a cap this user may not change): saving writes them all, and the copy loaded before
    the lock may be out of date."""
    saved = Campaign.objects.get(pk=campaign.pk)
    for column in Campaign._meta.concrete_fields:
        field = form.fields.get(column.name)
        if field is None or field.disabled:
            setattr(campaign, column.attname, getattr(saved, column.attname))


def _page(form: BuilderForm, campaign: Campaign) -> dict[str, Any]:
    made = campaign.pk is not None
    return {
        "title": f"Edit “{campaign}”" if made else "New campaign",
        "nav": "" if made else "new",
        "form": form,
        "campaign": campaign,
        # Once saved, the page posts to its edit URL: a refused submit must not make another.
        "form_action": reverse("dashboard:campaign_edit", args=(campaign.pk,))
        if made
        else reverse("dashboard:campaign_new"),
        "form_token": "" if made else campaign.form_token or "",
        "pending": campaign.status == Campaign.Status.PENDING_APPROVAL,
        "editing": True,
        # An edit's preview starts from the saved campaign: what this user may not change
        # (the frequency cap) is counted as saved.
        "preview_url": reverse("dashboard:campaign_preview")
        + (f"?campaign={campaign.pk}" if made else ""),
        "cap_in_force": cap_text(campaign),
        "link_base": link_base(),
    }


@builder_required
@require_POST
def campaign_preview(request: HttpRequest) -> JsonResponse:
    """What the form as typed would send: samples, audience parts, segments, counts and
    cost, as JSON."""
    saved = request.GET.get("campaign", "")
    base = get_object_or_404(Campaign, pk=saved) if saved.isdigit() else Campaign()
    form = BuilderForm(request.POST, instance=base, user=request.user)
    form.is_valid()  # only the fields the preview reads need to be valid
    cleaned = form.cleaned_data
    campaign = _unsaved(cleaned, request.POST.get("body", ""))
    # An unsaved campaign has no many-to-many rows to read its audience from: the preview
    # counts the audience chosen on the form instead.
    definition = AudienceDefinition.from_values(cleaned)
    has_account = "provider_account" in cleaned
    return JsonResponse(preview_json(campaign, definition, has_account=has_account))


def _unsaved(cleaned: dict[str, Any], typed_body: str) -> Campaign:
    """A campaign of the form's valid fields, for the preview (never saved)."""
    campaign = Campaign(
        provider_account=cleaned.get("provider_account") or ProviderAccount(),
        template=cleaned.get("template"),
        # A body with unknown variables fails the model's clean; the preview still shows it.
        body=cleaned.get("body", typed_body),
        # The audience rule's other inputs: quiet hours, when it starts, the frequency cap.
        scheduled_at=cleaned.get("scheduled_at"),
        window_start=cleaned.get("window_start"),
        window_end=cleaned.get("window_end"),
        cap_messages=cleaned.get("cap_messages"),
        cap_days=cleaned.get("cap_days"),
        variant_bodies=cleaned.get("variant_bodies") or [],
        ab_split=cleaned.get("ab_split") or [],
        track_links=cleaned.get("track_links", True),
        link_utm=cleaned.get("link_utm", True),
        name=cleaned.get("name", ""),
    )
    for name in ("channel", "time_zone", "frequency_cap", "ab_mode", "ab_test_share"):
        if cleaned.get(name):  # else left at the default
            setattr(campaign, name, cleaned[name])
    if None in (campaign.window_start, campaign.window_end) or (
        campaign.window_start == campaign.window_end
    ):
        campaign.window_start = campaign.window_end = None  # no window (yet) as typed
    return campaign


def preview_json(
    campaign: Campaign, definition: AudienceDefinition, has_account: bool = True
) -> dict[str, Any]:
    figures = estimate(campaign, definition=definition)
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
        "parts": [{**asdict(part), "text": part_text(asdict(part))} for part in figures.parts],
        "total_text": f"Total after exclusions: {figures.audience:,}" if figures.parts else "",
        "warnings": figures.warnings,
        "cap": cap_text(campaign),
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
        "missing": [{**m, "text": missing_text(m)} for m in map(asdict, figures.missing)],
        "variants": [
            {**asdict(v), "cost": money(v.cost, figures.currency) if has_account else ""}
            for v in figures.variants
        ],
        "rest_text": rest_text(figures.rest_share),
        "errors": errors,
    }


@builder_required
def campaign_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Send one test of a draft to the user's own phone, and show how it went."""
    campaign = get_object_or_404(Campaign.objects.select_related("provider_account"), pk=pk)
    form = TestSendForm(request.POST or None, user=request.user, variants=campaign.variant_labels)
    result: Message | None = None
    if request.method == "POST" and form.is_valid():
        try:
            variant = form.cleaned_data.get("variant", "A")
            phone = form.cleaned_data["number"].phone
            result = send_test(campaign, phone, by=request.user, variant=variant)
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
