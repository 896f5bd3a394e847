"""Dashboard page: every campaign, by status, mine or by name, newest change first."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from campaigns.models import Campaign, CampaignQuerySet
from campaigns.presenters import progress_of
from dashboard.access import can_see_campaigns
from dashboard.campaign_pages import counts_by_campaign, delivery_rate

S = Campaign.Status
PER_PAGE = 25
#: The filter for drafts sent back by an approver (a draft with a rejection reason).
REJECTED = "rejected"
#: Statuses whose messages exist (or may): the only rows whose counts are read.
BUILT = (S.SENDING, S.PAUSED, S.COMPLETED, S.CANCELLED)


def filtered(user: Any, status: str, mine: bool, query: str) -> CampaignQuerySet:
    campaigns = Campaign.objects.all()
    if status == REJECTED:
        campaigns = campaigns.filter(status=S.DRAFT).exclude(rejection_reason="")
    elif status in S.values:
        campaigns = campaigns.filter(status=status)
    if mine:
        campaigns = campaigns.filter(created_by=user)
    if query:
        campaigns = campaigns.filter(name__icontains=query)
    return campaigns


def status_filters(
    counts: dict[str, int], chosen: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    """The status links: all, each status, and rejected drafts, each with its count; each
    keeps "mine" and the search."""
    choices = [("", "All", sum(counts[s] for s in S.values))]
    choices += [(value, label, counts[value]) for value, label in S.choices]
    choices.insert(2, (REJECTED, "Rejected", counts[REJECTED]))  # right after Draft
    return [
        {
            "label": label,
            "count": count,
            "current": value == chosen,
            "link": query_string({**params, "status": value}),
        }
        for value, label, count in choices
    ]


def rows_of(page: Page[Campaign]) -> list[dict[str, Any]]:
    campaigns = list(page.object_list)
    built = [c.pk for c in campaigns if c.status in BUILT or c.started_at is not None]
    counts = counts_by_campaign(built)
    return [row_of(c, counts.get(c.pk)) for c in campaigns]


def row_of(campaign: Campaign, counts: dict[str, int] | None) -> dict[str, Any]:
    """One row: what it reaches, how far it got or how well it delivered, what it costs."""
    estimate = campaign.estimate or {}
    total = sum(counts.values()) if counts else 0
    audience = total or estimate.get("audience")
    row: dict[str, Any] = {
        "campaign": campaign,
        "audience_names": audience_names(campaign),
        "audience": audience,
        "rate": None,
        "percent_done": None,
        "currency": estimate.get("currency") or campaign.provider_account.currency,
        "cost": estimate.get("cost"),
        "cost_is_estimate": True,
    }
    if counts and campaign.status in (S.SENDING, S.PAUSED):
        row["percent_done"] = progress_of(campaign, counts)["percent_done"]
    elif counts:
        row["rate"] = delivery_rate(counts)
    if campaign.status == S.COMPLETED and campaign.final_cost is not None:
        row["cost"], row["cost_is_estimate"] = campaign.final_cost, False
    if row["cost"] is not None:
        row["cost"] = Decimal(str(row["cost"]))
    return row


def audience_names(campaign: Campaign) -> str:
    """Groups and tags, by name ("Customers, #vip"), from the prefetched rows."""
    names = [g.name for g in campaign.groups.all()] + [f"#{t.name}" for t in campaign.tags.all()]
    return ", ".join(names)


def query_string(params: dict[str, Any]) -> str:
    """`?a=1&b=2` of the parameters that are set (or `?` for none: the list as it starts)."""
    return "?" + urlencode({key: value for key, value in params.items() if value})


@login_required
@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    if not can_see_campaigns(request.user):
        raise PermissionDenied
    status = request.GET.get("status", "")
    status = status if status in (*S.values, REJECTED) else ""
    mine = request.GET.get("mine") == "1"
    query = request.GET.get("q", "").strip()[:200]
    # Counts per status for the filter links: one GROUP BY over campaigns, not messages.
    mine_or_named = filtered(request.user, "", mine, query)
    counts = mine_or_named.status_counts()
    campaigns = (
        filtered(request.user, status, mine, query)
        .select_related("provider_account", "created_by")
        .prefetch_related("groups", "tags")
        .order_by("-updated_at", "-id")
    )
    page = Paginator(campaigns, PER_PAGE).get_page(request.GET.get("page"))
    params = {"status": status, "mine": "1" if mine else "", "q": query}
    context = {
        "title": "Campaigns",
        "nav": "campaigns",
        "filters": status_filters(counts, status, params),
        "status": status,
        "mine": mine,
        "query": query,
        "page": page,
        "rows": rows_of(page),
        "previous_link": query_string({**params, "page": page.number - 1})
        if page.has_previous()
        else "",
        "next_link": query_string({**params, "page": page.number + 1}) if page.has_next() else "",
    }
    return render(request, "dashboard/campaign_list.html", context)


urlpatterns = [
    path("campaigns/", campaign_list, name="campaigns"),
]
