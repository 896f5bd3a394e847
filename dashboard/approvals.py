"""Dashboard pages: the approval queue, where approvers approve or reject in one click."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from campaigns.actions import ACTIONS, withheld_reason
from campaigns.models import Campaign, ChangedSinceShown, TransitionNotAllowed
from campaigns.presenters import (
    audience_texts,
    cap_text,
    decided_text,
    error_text,
    money,
    rest_text,
)
from campaigns.preview import missing_text
from dashboard.access import can_approve
from messaging.models import Message

PENDING = Campaign.Status.PENDING_APPROVAL


def _check_approver(request: HttpRequest) -> None:
    if not can_approve(request.user):
        raise PermissionDenied


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    _check_approver(request)
    pending = (
        Campaign.objects.filter(status=PENDING)
        .select_related(
            "submitted_by", "template", "provider_account", "test_message", "test_sent_by"
        )
        .prefetch_related("authors")
        .order_by("submitted_at", "pk")
    )
    rows = [_row(campaign, request.user) for campaign in pending]
    return render(
        request,
        "dashboard/approvals.html",
        {"title": "Approval queue", "nav": "approvals", "rows": rows},
    )


def _row(campaign: Campaign, user: Any) -> dict[str, Any]:
    """What an approver weighs: the estimate stored at submit (never worked out again now),
    the audience's parts as counted then, its samples rendered for real recipients (never
    the raw template), who is skipped and why, who lacks a variable, the frequency cap;
    and why they may not approve it, if four eyes says so."""
    figures = campaign.estimate
    skipped = figures.get("skipped", {})
    return {
        "campaign": campaign,
        "withheld": withheld_reason(user, campaign, ACTIONS["approve"]),
        "from_template": not campaign.body and campaign.template is not None,
        "audience": figures.get("audience"),
        # An estimate stored before parts were counted names them from the campaign: a
        # few queries for each such row, until the queue holds none.
        "parts": audience_texts(campaign, figures),
        "warnings": figures.get("warnings", []),
        "cap": cap_text(campaign),
        "queued": figures.get("queued", figures.get("sendable")),
        "skips": [
            (Message.SkipReason(reason).label, count)
            for reason, count in skipped.items()
            if count and reason in Message.SkipReason.values
        ],
        "samples": figures.get("samples", []),
        "variants": [
            {**variant, "cost_shown": money(variant["cost"], figures.get("currency", ""))}
            for variant in figures.get("variants", [])
        ],
        "rest_text": rest_text(figures.get("rest_share", 0)),
        "variants_id": f"variants-{campaign.pk}",
        "missing": [missing_text(m) for m in figures.get("missing", [])],
        "segments": figures.get("segments"),
        "cost": figures.get("cost"),
        "currency": figures.get("currency", ""),
    }


@login_required
@require_POST
def decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Approve or reject one campaign, as it was when the queue was shown."""
    _check_approver(request)
    campaign = get_object_or_404(Campaign, pk=pk)
    shown, reason = request.POST.get("content_hash", ""), request.POST.get("reason", "")
    try:
        campaign.decide(decision, request.user, shown, reason)
    except ChangedSinceShown as exc:
        messages.warning(request, str(exc))
    except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, decided_text(campaign, decision))
    return redirect("dashboard:approvals")


urlpatterns = [
    path("approvals/", approvals, name="approvals"),
    path("approvals/<int:pk>/approve/", decide, {"decision": "approve"}, name="approve"),
    path("approvals/<int:pk>/reject/", decide, {"decision": "reject"}, name="reject"),
]
