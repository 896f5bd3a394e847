"""Dashboard pages: one campaign — preview, live counts, delivery chart, actions, CSV export."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Min, OuterRef, Subquery
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET, require_POST

from audit.models import AuditEvent
from campaigns.actions import (
    ACTIONS,
    CHANGE,
    OPERATIONS,
    REFUSALS,
    Action,
    Operation,
    available_to,
    operation_refusal,
    operations_for,
    withheld_from,
)
from campaigns.content import Content
from campaigns.models import ABMode, Campaign, TransitionNotAllowed, message_counts
from campaigns.presenters import (
    LIVE_STATUSES,
    error_text,
    preview_of,
    progress_of,
    test_sends_of,
)
from campaigns.variants import figures as variant_figures
from campaigns.variants import shares
from campaigns.windows import Window
from contacts.spreadsheets import csv_lines
from dashboard.access import VIEW_CAMPAIGNS, can_export_results
from dashboard.inbox import ReplyFigures, replies_by_campaign
from messaging import counts as kept_counts
from messaging.links import find_urls, link_base
from messaging.models import Link, Message

#: Who may decide on messages in doubt (mark sent, send again): the admin action asks the same.
DECIDE_IN_DOUBT = "messaging.decide_in_doubt"
EXPORT_COLUMNS = (
    "phone",
    "status",
    "skip_reason",
    "error_code",
    "provider_message_id",
    "sent_at",
    "delivered_at",
    "clicked",  # when the recipient first followed one of its short links; empty: never
)


# Counts, shared with the home page.


def counts_by_campaign(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Messages per status for each campaign, every status present: one grouped query."""
    ids = list(campaign_ids)
    keys = {pk: f"herald:campaign:{pk}:counts" for pk in ids}
    cached = cache.get_many(list(keys.values()))
    counts = {pk: cached[keys[pk]] for pk in ids if keys[pk] in cached}
    missing = [pk for pk in ids if pk not in counts]
    if not missing:
        return counts
    fresh = message_counts(missing)
    # Live counters are polled every few seconds by everyone watching: counting a million
    # messages once per HERALD_LIVE_COUNTS_SECONDS serves them all.
    ttl = settings.HERALD_LIVE_COUNTS_SECONDS
    cache.set_many({keys[pk]: value for pk, value in fresh.items()}, ttl)
    return {**counts, **fresh}


def delivery_rate(counts: dict[str, int]) -> float | None:
    """Delivered out of what reached the provider (sent, delivered or failed), in percent;
    None until the first receipt (delivered or failed): 0% would say every one was lost."""
    receipts = counts.get("delivered", 0) + counts.get("failed", 0)
    reached = counts.get("sent", 0) + receipts
    return round(100 * counts.get("delivered", 0) / reached, 1) if receipts else None


def bar_segments(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Widths (percent) of the progress bar's parts, in the order they are drawn."""
    total = sum(counts.values())
    shown = ("delivered", "sent", "failed", "skipped")
    return [
        {"status": s, "width": round(100 * counts.get(s, 0) / total, 2) if total else 0}
        for s in shown
    ]


def viewable_campaign(request: HttpRequest, pk: int) -> Campaign:
    if not request.user.has_perm(VIEW_CAMPAIGNS):
        raise PermissionDenied
    return get_object_or_404(
        Campaign.objects.select_related("provider_account", "submitted_by", "approved_by"), pk=pk
    )


# The page's panels.


def failure_reasons(campaign: Campaign) -> list[dict[str, Any]]:
    """Failed messages per provider error code, most common first, with one example text:
    the campaign's kept counts, so read afresh on every view."""
    return kept_counts.failure_counts(campaign.pk)


CHART_WIDTH, CHART_HEIGHT = 600, 160


CHART_CACHE_SECONDS = 30


def delivery_chart(campaign: Campaign) -> dict[str, Any] | None:
    """Deliveries over time, kept for half a minute (a long campaign has a key a minute)."""
    key = f"herald:campaign:{campaign.pk}:delivery-chart"
    chart = cache.get(key)
    if chart is None:
        chart = _delivery_chart(campaign)
        if chart is not None:  # nothing delivered yet is not worth keeping: it will change
            cache.set(key, chart, CHART_CACHE_SECONDS)
    return chart


def _delivery_chart(campaign: Campaign) -> dict[str, Any] | None:
    """Deliveries per minute, hour or day (by span), from the campaign's kept counts of
    deliveries per UTC minute, laid out as SVG bars.

    Buckets are cut in the campaign's own time zone, so a day is the audience's day and
    an hour in a half-hour zone (India, Newfoundland) starts where their clocks say.
    """
    if campaign.started_at is None:
        return None
    zone = ZoneInfo(campaign.time_zone)
    length: timedelta = (campaign.completed_at or timezone.now()) - campaign.started_at
    unit = "minute" if length <= timedelta(hours=3) else "hour"
    if length > timedelta(days=3):
        unit = "day"
    buckets: dict[datetime, int] = {}
    for key, n in kept_counts.kept([campaign.pk], "dlv:")[campaign.pk].items():
        minute = datetime.fromisoformat(key.removeprefix("dlv:")).replace(tzinfo=UTC)
        bucket = _bucket(minute.astimezone(zone), unit)
        buckets[bucket] = buckets.get(bucket, 0) + n
    if not buckets:
        return None
    chart = chart_layout(sorted(buckets.items()), unit)
    chart["time_zone"] = campaign.time_zone
    return chart


def clicks_of(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any] | None:
    """Unique and total clicks, the click-through rate (unique clicks per delivered
    message) and clicks per hour or day in the campaign's zone, from its kept counts;
    None for a campaign with no link and no click."""
    if not find_urls(campaign.message_body) and not _links_in_parameters(campaign):
        return None  # its text, frozen once it was approved
    keys = kept_counts.kept([campaign.pk], "cl")[campaign.pk]  # clicks: and clk: alike
    clicks = kept_counts.click_counts_of(keys)
    delivered = counts[Message.Status.DELIVERED]
    hours = kept_counts.clicks_by_hour_of(keys)
    chart = None
    if hours:
        zone = ZoneInfo(campaign.time_zone)
        first = datetime.fromisoformat(hours[0][0]).replace(tzinfo=UTC)
        last = datetime.fromisoformat(hours[-1][0]).replace(tzinfo=UTC)
        unit = "hour" if last - first <= timedelta(days=2) else "day"
        buckets: dict[datetime, int] = {}
        for hour, n in hours:
            at = datetime.fromisoformat(hour).replace(tzinfo=UTC).astimezone(zone)
            bucket = _bucket(at, unit)
            buckets[bucket] = buckets.get(bucket, 0) + n
        chart = chart_layout(sorted(buckets.items()), unit)
        chart["time_zone"] = campaign.time_zone
    return {
        **clicks,
        "delivered": delivered,
        "rate_percent": round(100 * clicks["unique"] / delivered, 1) if delivered else None,
        "tracked": links_shortened(campaign),
        "chart": chart,
    }


def ab_of(campaign: Campaign) -> dict[str, Any] | None:
    """An A/B campaign's variants as they do now (messages, delivery and click-through
    rates, from the kept counts), how they are sent, and a test's decision; None for a
    campaign of one text."""
    if not campaign.variant_bodies:
        return None
    found = variant_figures(campaign)
    share_of = shares(campaign)
    rows = [
        {
            "variant": label,
            "share": share_of[label] / 100,
            "text": Content.of(campaign, label).body,
            "winner": label == campaign.ab_winner,
            **figures,
            "delivery_percent": round(100 * figures["delivery_rate"], 1),
            "click_percent": round(100 * figures["click_through_rate"], 1),
        }
        for label, figures in found.items()
    ]
    decision = campaign.ab_decision or {}
    return {
        "test": campaign.ab_mode == ABMode.TEST,
        "rows": rows,
        "test_share": campaign.ab_test_share,
        "test_hours": campaign.ab_test_hours,
        "winner_by": campaign.get_ab_winner_by_display().lower(),
        "ends_at": campaign.ab_test_ends_at,
        "winner": campaign.ab_winner,
        "why": decision.get("why", ""),
        "decided_at": datetime.fromisoformat(decision["decided_at"]) if decision else None,
    }


def _links_in_parameters(campaign: Campaign) -> bool:
    """Whether a WhatsApp template's parameters brought links (contacts' values can)."""
    if not Content.of(campaign).parameters:
        return False
    return Link.objects.filter(message__campaign=campaign).exists()


def links_shortened(campaign: Campaign) -> bool:
    """Whether its links go out as short links (HERALD_LINK_BASE set, its switch on)."""
    return bool(link_base()) and campaign.track_links


def _bucket(local: datetime, unit: str) -> datetime:
    """The start of the minute, hour or day `local` falls in, on the zone's own clock."""
    if unit == "minute":
        return local.replace(second=0, microsecond=0)
    if unit == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return datetime.combine(local.date(), time.min, tzinfo=local.tzinfo)


def chart_layout(buckets: list[tuple[datetime, int]], unit: str) -> dict[str, Any]:
    peak = max(n for _, n in buckets)
    step = CHART_WIDTH / len(buckets)
    bars = [
        {
            "x": round(i * step + step * 0.1, 2),
            "width": round(max(step * 0.8, 1), 2),
            "height": round(CHART_HEIGHT * n / peak, 2),
            "y": round(CHART_HEIGHT - CHART_HEIGHT * n / peak, 2),
            "at": at,
            "n": n,
        }
        for i, (at, n) in enumerate(buckets)
    ]
    busiest_at, _ = max(buckets, key=lambda bucket: bucket[1])
    return {
        "bars": bars,
        "unit": unit,
        "peak": peak,
        "busiest_at": busiest_at,
        "total": sum(n for _, n in buckets),
        "first": buckets[0][0],
        "last": buckets[-1][0],
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
    }


def cached(key: str, seconds: int, work: Callable[[], Any]) -> Any:
    """`work()`, shared by everyone watching for `seconds` (a scan of the messages)."""
    value = cache.get(key)
    if value is None:
        value = work()
        cache.set(key, value, seconds)
    return value


def quiet_hours(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any] | None:
    """Messages waiting for the send window, per set of zones, with when it next opens there
    (campaigns.windows); None when there is no window or nothing waits for it."""
    window = Window(campaign.window_start, campaign.window_end)
    if window.always_open or campaign.status not in HELD_STATUSES or not counts["pending"]:
        return None
    key = f"herald:campaign:{campaign.pk}:quiet-hours"
    held = cached(key, CHART_CACHE_SECONDS, lambda: _held_by_window(campaign, window))
    if not held:
        return None
    return {
        "held": sum(zone["n"] for zone in held),
        "window": f"{campaign.window_start:%H:%M} to {campaign.window_end:%H:%M}",
        "zones": held[:QUIET_HOURS_ZONES_SHOWN],
        "more_zones": len(held) - QUIET_HOURS_ZONES_SHOWN,
    }


HELD_STATUSES = (Campaign.Status.SENDING, Campaign.Status.PAUSED)
QUIET_HOURS_ZONES_SHOWN = 5


def _held_by_window(campaign: Campaign, window: Window) -> list[dict[str, Any]]:
    now = timezone.now()
    # Due later with no error: put off by the window (a retry carries its error).
    rows = (
        campaign.messages.filter(status=Message.Status.PENDING, next_attempt_at__gt=now)
        .filter(error_code="")
        .order_by()
        .values("time_zones")
        .annotate(n=Count("pk"), first=Min("next_attempt_at"))
    )
    held = []
    for row in rows:
        names = tuple(row["time_zones"].split(",")) if row["time_zones"] else (campaign.time_zone,)
        opens = window.next_open(names, now)
        if opens is None or opens <= now:
            opens = row["first"]
        local = opens.astimezone(ZoneInfo(names[0]))
        held.append(
            {
                "zones": ", ".join(names),
                "n": row["n"],
                "opens": opens,
                "opens_text": f"{date_format(local, 'j M Y, H:i')} {local.tzname()}",
            }
        )
    return sorted(held, key=lambda zone: (zone["opens"], zone["zones"]))


def skipped_by_reason(campaign: Campaign, counts: dict[str, int]) -> list[tuple[str, int]]:
    """The skipped recipients per reason (label, count), only the reasons that occur."""
    if not counts["skipped"]:
        return []
    key = f"herald:campaign:{campaign.pk}:skip-reasons"
    ttl = settings.HERALD_LIVE_COUNTS_SECONDS
    reasons = cached(key, ttl, lambda: kept_counts.skip_counts(campaign.pk))
    return [(Message.SkipReason(r).label, n) for r, n in reasons.items() if n]


def actual_cost(campaign: Campaign) -> Decimal | None:
    """What the provider charged for what it accepted: final once completed, else summed
    (kept half a minute); None before anything was sent."""
    if campaign.status == Campaign.Status.COMPLETED and campaign.final_cost is not None:
        return campaign.final_cost
    if campaign.started_at is None:
        return None
    # Whatever was handed over (sent_at set) was charged: the kept cost of every day.
    kept = kept_counts.kept([campaign.pk], "day:")[campaign.pk]
    total = sum(n for key, n in kept.items() if key.endswith(":cost5"))
    return Decimal(total) / kept_counts.COST_SCALE


CHARGED = (Message.Status.SENT, Message.Status.DELIVERED, Message.Status.FAILED)


def replies_of(campaign: Campaign, counts: dict[str, int]) -> ReplyFigures:
    """Replies and opt-outs put down to the campaign (counted as often as its live counts),
    over what it delivered and what reached the provider."""
    key = f"herald:campaign:{campaign.pk}:replies"
    ttl = settings.HERALD_LIVE_COUNTS_SECONDS
    figures: ReplyFigures = cached(
        key, ttl, lambda: replies_by_campaign([campaign.pk])[campaign.pk]
    )
    figures.delivered = counts["delivered"]
    figures.sent = sum(counts[status] for status in CHARGED)
    return figures


# The parts of the page that change with the campaign's status, also sent to its open page.


def live_parts(request: HttpRequest, campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    """What the status, actions, outcome and history fragments show."""
    user = request.user
    currency = (campaign.estimate or {}).get("currency") or campaign.provider_account.currency
    return {
        "campaign": campaign,
        "actions": available_to(user, campaign),
        "withheld": withheld_from(user, campaign),
        "operations": operations_for(user, campaign),
        "quiet_hours": quiet_hours(campaign, counts),
        "delivery_rate": delivery_rate(counts),
        "skipped": skipped_by_reason(campaign, counts),
        "actual_cost": actual_cost(campaign),
        "estimated_cost": (campaign.estimate or {}).get("cost"),
        "currency": currency,
        "transitions": campaign.transitions.select_related("by"),
    }


CHART = "dashboard/_campaign_chart.html"
FRAGMENTS = {
    "status_html": "dashboard/_campaign_status.html",
    "outcome_html": "dashboard/_campaign_outcome.html",
    "history_html": "dashboard/_campaign_history.html",
}


# Views.


@login_required
@require_GET
def campaign(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = viewable_campaign(request, pk)
    counts = counts_by_campaign([campaign.pk])[campaign.pk]
    context = {
        **live_parts(request, campaign, counts),
        "title": campaign.name,
        "progress": progress_of(campaign, counts),
        "bar": bar_segments(counts),
        "count_rows": [(value, label, counts[value]) for value, label in Message.Status.choices],
        "live": campaign.status in LIVE_STATUSES,
        "preview": preview_of(campaign),
        "chart": delivery_chart(campaign),
        "failures": failure_reasons(campaign),
        "replies": replies_of(campaign, counts),
        "clicks": clicks_of(campaign, counts),
        "ab": ab_of(campaign),
        "reply_days": settings.HERALD_REPLY_ATTRIBUTION_DAYS,
        "test_sends": test_sends_of(campaign),
        "in_doubt": counts[Message.Status.IN_DOUBT],
        "may_decide": request.user.has_perm(DECIDE_IN_DOUBT),
        "may_export": can_export_results(request.user),
    }
    return render(request, "dashboard/campaign.html", context)


IN_DOUBT_DONE = {"mark_sent": "marked as sent", "send_again": "queued to be sent again"}


@login_required
@require_POST
def campaign_in_doubt(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Staff's decision on every message of the campaign still in doubt."""
    campaign = viewable_campaign(request, pk)
    if decision not in IN_DOUBT_DONE or not request.user.has_perm(DECIDE_IN_DOUBT):
        raise PermissionDenied
    if decision == "send_again" and request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the box to confirm.")
        return redirect("dashboard:campaign", pk=campaign.pk)
    moved = campaign.messages.decide_in_doubt(decision, by=request.user)
    cache.delete(f"herald:campaign:{campaign.pk}:counts")
    if moved:
        messages.success(request, f"{moved} message{pluralize(moved)} {IN_DOUBT_DONE[decision]}.")
    else:
        messages.error(request, "No message was moved: none in doubt, or the campaign finished.")
    return redirect("dashboard:campaign", pk=campaign.pk)


@login_required
@require_GET
def campaign_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """The live counts; with `?with=page`, the campaign page's changing parts as HTML too
    (status and actions, outcome, history), so its open page never shows a stale status."""
    campaign = viewable_campaign(request, pk)
    counts = counts_by_campaign([campaign.pk])[campaign.pk]
    progress = progress_of(campaign, counts)
    if request.GET.get("with") == "page":
        parts = live_parts(request, campaign, counts)
        for name, template in FRAGMENTS.items():
            progress[name] = render_to_string(template, parts, request=request)
        # The chart scans the delivered messages: drawn again only for a page that still
        # shows another status (`shown`), as when sending ends.
        if request.GET.get("shown", campaign.status) != campaign.status:
            chart = {"chart": delivery_chart(campaign)}
            progress["chart_html"] = render_to_string(CHART, chart, request=request)
    return JsonResponse(progress)


def export_rows(campaign: Campaign) -> Iterator[Iterable[Any]]:
    yield EXPORT_COLUMNS
    first_click = (
        Link.objects.filter(message=OuterRef("pk"), first_clicked_at__isnull=False)
        .order_by("first_clicked_at")
        .values("first_clicked_at")[:1]
    )
    messages = campaign.messages.annotate(clicked=Subquery(first_click))
    rows = messages.order_by("pk").values_list(*EXPORT_COLUMNS)
    for row in rows.iterator(chunk_size=2000):
        yield [cell_text(value) for value in row]


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@login_required
@require_GET
def campaign_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    campaign = viewable_campaign(request, pk)
    if not can_export_results(request.user):
        raise PermissionDenied
    AuditEvent.record(
        AuditEvent.Action.EXPORT,
        actor=request.user,
        obj=campaign,
        detail={"export": "campaign recipients"},
    )
    response = StreamingHttpResponse(csv_lines(export_rows(campaign)), content_type="text/csv")
    filename = f"campaign-{campaign.pk}-results.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    campaign = viewable_campaign(request, pk)
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise PermissionDenied
    if request.method == "GET" and chosen.confirmation:
        return confirm_page(request, campaign, chosen)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    note = request.POST.get("note", "").strip()
    if chosen.confirmation and request.POST.get("confirm") != "yes":
        problem = "Tick the box to confirm."
        return confirm_page(request, campaign, chosen, note=note, problem=problem, status=400)
    # Whoever may not take it is refused by the model, in the action table's words.
    take(request, campaign, chosen, note)
    return redirect("dashboard:campaign", pk=campaign.pk)


def take(request: HttpRequest, campaign: Campaign, action: Action, note: str) -> None:
    try:
        campaign.act(action.name, request.user, note)
    except (TransitionNotAllowed, PermissionDenied, ValidationError) as exc:
        messages.error(request, error_text(exc))
    else:
        label = campaign.get_status_display().lower()
        messages.success(request, f"“{campaign}” is now {label}.")


def confirm_page(
    request: HttpRequest,
    campaign: Campaign,
    action: Action,
    note: str = "",
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "title": f"{action.label}: {campaign}",
        "campaign": campaign,
        "action": action,
        "note": note,
        "problem": problem,
    }
    return render(request, "dashboard/_campaign_confirm.html", context, status=status)


# Operations that are not status moves (campaigns.actions.OPERATIONS): duplicate and
# delete here; edit is the builder's page, test its test page.


@login_required
@require_POST
def campaign_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = viewable_campaign(request, pk)
    try:
        copy = campaign.duplicate(by=request.user)
    except (TransitionNotAllowed, PermissionDenied) as exc:
        messages.error(request, error_text(exc))
        return redirect("dashboard:campaign", pk=campaign.pk)
    messages.success(request, f"“{copy}” is a new draft: check it, then submit it.")
    return redirect("dashboard:campaign", pk=copy.pk)


@login_required
def campaign_delete(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = viewable_campaign(request, pk)
    chosen = OPERATIONS["delete"]
    if request.method == "GET":
        return operation_page(request, campaign, chosen)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.POST.get("confirm") != "yes":
        return operation_page(request, campaign, chosen, "Tick the box to confirm.", 400)
    try:
        campaign.delete_draft(by=request.user)
    except (TransitionNotAllowed, PermissionDenied) as exc:
        messages.error(request, error_text(exc))
        return redirect("dashboard:campaign", pk=campaign.pk)
    messages.success(request, f"The draft “{campaign}” was deleted.")
    return redirect("dashboard:campaigns")


def operation_page(
    request: HttpRequest,
    campaign: Campaign,
    chosen: Operation,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    """What is asked before a draft is deleted."""
    refusal = operation_refusal(request.user, campaign, chosen)
    if refusal == REFUSALS[CHANGE]:
        raise PermissionDenied(refusal)
    if refusal:
        messages.error(request, refusal)
        return redirect("dashboard:campaign", pk=campaign.pk)
    context = {
        "title": f"{chosen.label}: {campaign}",
        "campaign": campaign,
        "operation": chosen,
        "problem": problem,
        "url": request.path,
    }
    return render(request, "dashboard/campaign_operation.html", context, status=status)


urlpatterns = [
    path("campaigns/<int:pk>/", campaign, name="campaign"),
    path("campaigns/<int:pk>/duplicate/", campaign_duplicate, name="campaign_duplicate"),
    path("campaigns/<int:pk>/delete/", campaign_delete, name="campaign_delete"),
    path("campaigns/<int:pk>/progress/", campaign_progress, name="campaign_progress"),
    path("campaigns/<int:pk>/export.csv", campaign_export, name="campaign_export"),
    path("campaigns/<int:pk>/action/<str:action>/", campaign_action, name="campaign_action"),
    path(
        "campaigns/<int:pk>/in-doubt/<str:decision>/", campaign_in_doubt, name="campaign_in_doubt"
    ),
]
