"""Dashboard pages: delivery and cost reports over a date range, as tables, a chart and CSV.

Every figure on the page comes from the campaigns' kept counts (messaging.counts) by
campaign, provider account and day, rolled up in Python: a million-message campaign is
a few rows a day, never a scan of its messages.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign
from contacts import spreadsheets
from dashboard.access import can_see_reports
from dashboard.inbox import ReplyFigures, replies_by_campaign
from messaging import counts
from messaging.models import ProviderAccount

REPORTED_STATUSES = (Campaign.Status.SENDING, Campaign.Status.COMPLETED)
DEFAULT_DAYS = 30
MAX_DAYS = 366
CSV_COLUMNS = (
    "campaign",
    "status",
    "started_at",
    "provider_account",
    "sent",
    "delivered",
    "failed",
    "delivery_rate",
    "cost",
    "currency",
    "replies",
    "reply_rate",
    "opt_outs",
    "opt_out_rate",
    "unique_clicks",
    "clicks",
    "click_through_rate",
)


class ReportRangeForm(forms.Form):
    """`from` and `to` (inclusive local dates); without either, the last DEFAULT_DAYS days."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so the fields cannot be declared as class attributes.
        for name, label in (("from", "From"), ("to", "To")):
            self.fields[name] = forms.DateField(
                label=label,
                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                help_text="As YYYY-MM-DD.",
            )

    @classmethod
    def from_query(cls, query: QueryDict) -> ReportRangeForm:
        if "from" not in query and "to" not in query:
            today = timezone.localdate()
            start = today - datetime.timedelta(days=DEFAULT_DAYS - 1)
            return cls({"from": start.isoformat(), "to": today.isoformat()})
        return cls(query)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end:
            if end < start:
                raise forms.ValidationError("The end date must not be before the start date.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"Choose a range of at most {MAX_DAYS} days.")
        return cleaned


@dataclass
class Figures:
    """Message counts and cost of one row of a report."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    cost: Decimal = Decimal(0)
    #: Clicks on short links: a campaign's recipients who clicked (a day's: clicks that day).
    unique_clicks: int = 0
    clicks: int = 0

    def add(self, row: dict[str, Any]) -> None:
        self.sent += row["sent"]
        self.delivered += row["delivered"]
        self.failed += row["failed"]
        self.cost += row["cost"] or Decimal(0)
        self.unique_clicks += row.get("unique_clicks", 0)
        self.clicks += row.get("clicks", 0)

    @property
    def click_percent(self) -> float | None:
        """Click-through rate: recipients who clicked, per delivered message."""
        return 100 * self.unique_clicks / self.delivered if self.delivered else None

    @property
    def delivery_rate(self) -> float | None:
        """Share of the messages handed to the provider that reached the handset."""
        return self.delivered / self.sent if self.sent else None

    @property
    def delivery_percent(self) -> float | None:
        rate = self.delivery_rate
        return None if rate is None else rate * 100


@dataclass
class CampaignRow:
    campaign: Campaign
    figures: Figures = field(default_factory=Figures)
    #: Replies and opt-outs put down to the campaign, over what it delivered.
    replies: ReplyFigures = field(default_factory=ReplyFigures)


@dataclass
class AccountRow:
    account: ProviderAccount
    figures: Figures = field(default_factory=Figures)


@dataclass
class Report:
    start: datetime.date
    end: datetime.date
    campaigns: list[CampaignRow]
    accounts: list[AccountRow]
    days: dict[datetime.date, Figures]
    counted_at: datetime.datetime = field(default_factory=timezone.now)

    @cached_property
    def total(self) -> Figures:
        total = Figures()
        for row in self.campaigns:
            total.add(vars(row.figures))
        return total

    @cached_property
    def total_replies(self) -> ReplyFigures:
        total = ReplyFigures()
        for row in self.campaigns:
            total.add(row.replies)
        return total

    @property
    def currency(self) -> str:
        """The campaigns' one currency; empty when they differ (their costs do not add up)."""
        currencies = {row.campaign.provider_account.currency for row in self.campaigns}
        return currencies.pop() if len(currencies) == 1 else ""


def local_midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def campaigns_in_range(start: datetime.date, end: datetime.date) -> list[Campaign]:
    """Sending or completed campaigns that started between the two dates (inclusive)."""
    started = Q(started_at__gte=local_midnight(start))
    started &= Q(started_at__lt=local_midnight(end + datetime.timedelta(days=1)))
    fields = ("id", "name", "status", "started_at", "provider_account__name")
    return list(
        Campaign.objects.filter(started, status__in=REPORTED_STATUSES)
        .select_related("provider_account")
        .only(*fields, "provider_account__currency")
        .order_by("-started_at", "-id")
    )


def message_figures(campaign_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Counts and cost per (campaign, provider account, local day), from the campaigns'
    kept counts: a few rows per campaign and day, however many messages.

    A message's day is when it was handed over; one that failed before that, when it failed.
    """
    rows: dict[tuple[int, int, str], dict[str, Any]] = {}
    for campaign_id, keys in counts.kept(campaign_ids, "day:").items():
        for key, n in keys.items():
            _, day, account, figure = key.split(":")
            row = rows.setdefault(
                (campaign_id, int(account), day),
                {
                    "campaign_id": campaign_id,
                    "provider_account_id": int(account),
                    "day": datetime.date.fromisoformat(day),
                    "sent": 0,
                    "delivered": 0,
                    "failed": 0,
                    "cost": Decimal(0),
                },
            )
            if figure == "cost5":
                row["cost"] += Decimal(n) / counts.COST_SCALE
            else:
                row[figure] += n
    return list(rows.values())


def build_report(start: datetime.date, end: datetime.date) -> Report:
    campaigns = campaigns_in_range(start, end)
    by_campaign = {c.pk: CampaignRow(c) for c in campaigns}
    rows = message_figures(by_campaign) if campaigns else []
    days = {start + datetime.timedelta(days=n): Figures() for n in range((end - start).days + 1)}
    by_account: dict[int, Figures] = {}
    for row in rows:
        by_campaign[row["campaign_id"]].figures.add(row)
        by_account.setdefault(row["provider_account_id"], Figures()).add(row)
        if row["day"] in days:  # a campaign may go on sending after the range ends
            days[row["day"]].add(row)
    add_replies(by_campaign)
    add_clicks(by_campaign, days)
    accounts = ProviderAccount.objects.only("name", "currency").in_bulk(list(by_account))
    account_rows = [AccountRow(accounts[pk], figures) for pk, figures in by_account.items()]
    account_rows.sort(key=lambda row: row.account.name)
    return Report(start, end, list(by_campaign.values()), account_rows, days)


def add_clicks(by_campaign: dict[int, CampaignRow], days: dict[datetime.date, Figures]) -> None:
    """Each campaign's unique and total clicks, and the clicks of each day of the range (by
    the site's day, as the other figures): from the kept counts of clicks per UTC hour."""
    if not by_campaign:
        return
    zone = timezone.get_default_timezone()
    for pk, keys in counts.kept(list(by_campaign), "cl").items():
        clicks = counts.click_counts_of(keys)
        figures = by_campaign[pk].figures
        figures.unique_clicks, figures.clicks = clicks["unique"], clicks["total"]
        for hour, n in counts.clicks_by_hour_of(keys):
            moment = datetime.datetime.fromisoformat(hour).replace(tzinfo=datetime.UTC)
            day = moment.astimezone(zone).date()
            if day in days:
                days[day].clicks += n


def add_replies(by_campaign: dict[int, CampaignRow]) -> None:
    """Each row's replies and opt-outs (one grouped query), over its delivered and sent."""
    if not by_campaign:
        return
    for pk, figures in replies_by_campaign(list(by_campaign)).items():
        row = by_campaign[pk]
        figures.delivered, figures.sent = row.figures.delivered, row.figures.sent
        row.replies = figures


def shared_report(start: datetime.date, end: datetime.date) -> Report:
    """The report for a range as counted at most HERALD_REPORT_SECONDS ago.

    The figures are the campaigns' kept counts, a few rows each; replies are counted
    from their own table. Everyone looking at the same range within the window shares
    one report, and the page says when it was made.
    """
    ttl = settings.HERALD_REPORT_SECONDS
    key = f"herald:report:{start.isoformat()}:{end.isoformat()}"
    report = cache.get(key) if ttl > 0 else None
    if report is None:
        report = build_report(start, end)
        if ttl > 0:
            cache.set(key, report, ttl)
    return report


@dataclass(frozen=True)
class Bar:
    day: datetime.date
    x: float
    width: float
    delivered_y: float
    delivered_height: float
    failed_y: float
    failed_height: float
    figures: Figures


@dataclass(frozen=True)
class Chart:
    """Geometry of the messages-per-day chart, drawn as SVG by the template."""

    width: int
    height: int
    left: int
    top: int
    baseline: float
    peak: int
    bars: list[Bar]
    labels: list[tuple[float, datetime.date]]


def chart_of(days: dict[datetime.date, Figures], width: int = 720, height: int = 240) -> Chart:
    """Stacked bars per day, delivered below failed, scaled to the busiest day."""
    left, top, right, bottom = 56, 12, 8, 28
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = max((f.delivered + f.failed for f in days.values()), default=0) or 1
    slot = plot_width / max(len(days), 1)
    baseline = top + plot_height
    bars = []
    for n, (day, figures) in enumerate(days.items()):
        delivered_height = plot_height * figures.delivered / peak
        failed_height = plot_height * figures.failed / peak
        delivered_y = baseline - delivered_height
        bars.append(
            Bar(
                day,
                round(left + n * slot + slot * 0.15, 2),
                round(max(slot * 0.7, 1), 2),
                round(delivered_y, 2),
                round(delivered_height, 2),
                round(delivered_y - failed_height, 2),
                round(failed_height, 2),
                figures,
            )
        )
    every = max(len(bars) // 6, 1)  # at most seven date labels, so they never overlap
    labels = [(round(bar.x + bar.width / 2, 2), bar.day) for bar in bars[::every]]
    return Chart(width, height, left, top, baseline, peak, bars, labels)


@dataclass(frozen=True)
class ClickBar:
    day: datetime.date
    x: float
    y: float
    width: float
    height: float
    clicks: int


def click_chart_of(
    days: dict[datetime.date, Figures], width: int = 720, height: int = 160
) -> dict[str, Any] | None:
    """Bars of clicks per day, scaled to the busiest; None when no day had any."""
    peak = max((figures.clicks for figures in days.values()), default=0)
    if not peak:
        return None
    left, top, bottom = 56, 12, 28
    plot_width, plot_height = width - left - 8, height - top - bottom
    slot = plot_width / len(days)
    baseline = top + plot_height
    bars = [
        ClickBar(
            day,
            round(left + n * slot + slot * 0.15, 2),
            round(baseline - plot_height * figures.clicks / peak, 2),
            round(max(slot * 0.7, 1), 2),
            round(plot_height * figures.clicks / peak, 2),
            figures.clicks,
        )
        for n, (day, figures) in enumerate(days.items())
    ]
    every = max(len(bars) // 6, 1)
    labels = [(round(bar.x + bar.width / 2, 2), bar.day) for bar in bars[::every]]
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "baseline": baseline,
        "peak": peak,
        "total": sum(bar.clicks for bar in bars),
        "bars": bars,
        "labels": labels,
    }


def csv_rows(report: Report) -> Iterator[Iterable[Any]]:
    yield CSV_COLUMNS
    for row in report.campaigns:
        campaign, figures = row.campaign, row.figures
        rate = figures.delivery_rate
        yield [
            campaign.name,
            campaign.status,
            campaign.started_at.isoformat() if campaign.started_at else "",
            campaign.provider_account.name,
            figures.sent,
            figures.delivered,
            figures.failed,
            "" if rate is None else f"{rate:.4f}",
            f"{figures.cost:.5f}",
            campaign.provider_account.currency,
            row.replies.replies,
            _share(row.replies.replies, figures.delivered),
            row.replies.opt_outs,
            _share(row.replies.opt_outs, figures.delivered),
            figures.unique_clicks,
            figures.clicks,
            _share(figures.unique_clicks, figures.delivered),
        ]


def _share(count: int, of: int) -> str:
    """A rate per delivered message for the CSV, as delivery_rate is written; empty: none."""
    return f"{count / of:.4f}" if of else ""


def csv_response(report: Report) -> StreamingHttpResponse:
    lines = spreadsheets.csv_lines(csv_rows(report))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = f"campaigns-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def reports(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
    if not can_see_reports(request.user):
        raise PermissionDenied
    form = ReportRangeForm.from_query(request.GET)
    wants_csv = request.GET.get("format") == "csv"
    if not form.is_valid():
        if wants_csv:
            return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
        context = {"title": "Reports", "nav": "reports", "form": form, "report": None}
        return render(request, "dashboard/reports.html", context)
    start, end = form.cleaned_data["from"], form.cleaned_data["to"]
    if wants_csv:
        report = build_report(start, end)
        AuditEvent.record(
            AuditEvent.Action.EXPORT,
            actor=request.user,
            detail={
                "export": "campaign report",
                "from": report.start.isoformat(),
                "to": report.end.isoformat(),
            },
        )
        return csv_response(report)
    report = shared_report(start, end)
    context = {
        "title": "Reports",
        "nav": "reports",
        "form": form,
        "report": report,
        "chart": chart_of(report.days),
        "click_chart": click_chart_of(report.days),
        "report_seconds": settings.HERALD_REPORT_SECONDS,
        "csv_query": f"from={report.start:%Y-%m-%d}&to={report.end:%Y-%m-%d}&format=csv",
    }
    return render(request, "dashboard/reports.html", context)


urlpatterns = [
    path("reports/", reports, name="reports"),
]
