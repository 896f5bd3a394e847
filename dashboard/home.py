"""Dashboard pages: home — campaigns in flight, awaiting my approval, recent results, providers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from api.models import WebhookSubscription
from campaigns.models import Campaign
from campaigns.presenters import progress_of
from dashboard.access import (
    can_approve,
    can_build,
    can_manage_webhooks,
    can_see_accounts,
    can_see_campaigns,
    has_a_dashboard_area,
)
from dashboard.campaign_pages import bar_segments, counts_by_campaign, delivery_rate
from messaging.models import ProviderAccount

S = Campaign.Status
IN_FLIGHT = (S.SENDING, S.PAUSED, S.SCHEDULED)
RECENT_COMPLETIONS = 10


def campaign_sections(user: Any) -> dict[str, Any]:
    """The three lists of campaigns, their counts from one grouped query."""
    listed = Campaign.objects.select_related("provider_account")
    in_flight = list(listed.filter(status__in=IN_FLIGHT).order_by("status", "-started_at", "-pk"))
    completed = list(
        listed.filter(status=S.COMPLETED).order_by("-completed_at", "-pk")[:RECENT_COMPLETIONS]
    )
    awaiting: list[Campaign] = []
    if can_approve(user):
        awaiting = list(
            listed.select_related("submitted_by")
            .filter(status=S.PENDING_APPROVAL)
            .exclude(submitted_by=user)
            .order_by("submitted_at", "pk")
        )
    rejected: list[Campaign] = []
    if can_build(user):
        rejected = list(rejected_for(user).select_related("provider_account"))
    counts = counts_by_campaign(c.pk for c in [*in_flight, *completed])
    return {
        "in_flight": [
            {
                "campaign": c,
                "progress": progress_of(c, counts[c.pk]),
                "bar": bar_segments(counts[c.pk]),
            }
            for c in in_flight
        ],
        "completed": [
            {"campaign": c, "counts": counts[c.pk], "rate": delivery_rate(counts[c.pk])}
            for c in completed
        ],
        "awaiting": awaiting,
        "rejected": rejected,
    }


def rejected_for(user: Any) -> QuerySet[Campaign]:
    """The user's campaigns an approver sent back with a reason, not yet submitted again."""
    mine = Q(created_by_id=user.pk) | Q(submitted_by_id=user.pk)
    return (
        Campaign.objects.filter(mine, status=S.DRAFT)
        .exclude(rejection_reason="")
        .order_by("-updated_at", "-pk")
    )


def low_balances(accounts: Iterable[ProviderAccount], in_flight: list[Any]) -> list[dict[str, Any]]:
    """The accounts found too low to send, each with how many campaigns in flight it paused
    (counted from the lists already read: no query of its own)."""
    return [
        {
            "account": account,
            "paused": sum(
                1
                for row in in_flight
                if row["campaign"].provider_account_id == account.pk
                and row["campaign"].status == S.PAUSED
                and row["campaign"].pause_reason == account.balance_low_reason
            ),
        }
        for account in accounts
        if account.balance_low_at is not None
    ]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each panel only for those who may view its data; without any, whom to ask for access."""
    user = request.user
    context: dict[str, Any] = {"title": "Home", "nav": "home"}
    if can_see_campaigns(user):
        context.update(campaign_sections(user))
        context["shows_campaigns"] = True
    if can_see_accounts(user):
        # Health without a network call: whether each account could send at all.
        context["accounts"] = list(ProviderAccount.objects.order_by("name"))
        context["shows_accounts"] = True
    if context.get("shows_campaigns") or context.get("shows_accounts"):
        # A low balance stops sending: whoever watches campaigns or accounts is told why.
        accounts = context.get("accounts") or ProviderAccount.objects.filter(
            balance_low_at__isnull=False
        )
        context["low_balances"] = low_balances(accounts, context.get("in_flight", []))
    if can_manage_webhooks(user):
        # Turned off after a day of failures: nothing is recorded for it until turned on.
        context["disabled_webhooks"] = list(WebhookSubscription.objects.disabled())
    if not has_a_dashboard_area(user):
        context["no_access"] = True
        context["access_contact"] = settings.HERALD_ACCESS_CONTACT
        context["has_admin_pages"] = user.is_staff and bool(user.get_all_permissions())
    return render(request, "dashboard/home.html", context)


urlpatterns = [
    path("", home, name="home"),
]
