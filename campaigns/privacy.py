"""Data retention (the daily purge) and the campaigns' side of a contact's erasure.

Purging keeps every Message row with its status, segments, cost and times, so
campaign pages and reports show the same figures after a purge as before it; only
the content goes. Campaigns still sending, paused, or with messages in doubt are
never touched.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from campaigns.models import Campaign, TestNumber
from contacts.erasure import purge_import_files
from contacts.models import Contact, erasing
from messaging.models import Message
from messaging.privacy import BATCH, purge_content, purge_events, purge_replies

logger = logging.getLogger(__name__)
S = Campaign.Status


@dataclass
class PurgeReport:
    before: datetime
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)

    def summary_line(self) -> str:
        figures = " ".join(f"{k.replace(' ', '_')}={n}" for k, n in sorted(self.counts.items()))
        verb = "would purge" if self.dry_run else "purged"
        return f"{verb} before {self.before:%Y-%m-%d %H:%M} UTC: {figures or 'nothing'}"


def finished_before(before: datetime) -> QuerySet[Campaign]:
    """Campaigns done before `before` whose messages still hold content.

    Completed ones by when they completed; cancelled ones by their last change, and
    only once none of their messages is still being sent or in doubt.
    """
    unfinished = Message.objects.filter(
        campaign=OuterRef("pk"), status__in=Message.UNFINISHED_STATUSES
    )
    completed = Q(status=S.COMPLETED, completed_at__lt=before)
    cancelled = Q(status=S.CANCELLED, updated_at__lt=before)
    return (
        Campaign.objects.filter(completed | cancelled, content_purged_at__isnull=True)
        .exclude(Exists(unfinished))
        .order_by("pk")
    )


def purge(days: int, *, dry_run: bool = False, batch: int = BATCH) -> PurgeReport:
    """Blank message content and delete events older than `days` days; idempotent, resumable.

    Each batch commits on its own, so a purge stopped half-way leaves every row
    either whole or blanked, and the next run carries on where it stopped.
    """
    if days < 1:
        raise ValueError("retention needs at least 1 day")
    report = PurgeReport(timezone.now() - timedelta(days=days), dry_run)
    for campaign in finished_before(report.before):
        report.counts["campaigns"] += 1
        report.counts["messages"] += purge_campaign(campaign, dry_run=dry_run, batch=batch)
    tests = Message.objects.filter(campaign__isnull=True, created_at__lt=report.before)
    tests = tests.exclude(status__in=Message.UNFINISHED_STATUSES)
    report.counts["test messages"] += purge_content(tests, batch, dry_run)
    report.counts.update(purge_events(report.before, batch, dry_run))
    report.counts["replies"] += purge_replies(report.before, batch, dry_run)
    report.counts["import files"] += purge_import_files(report.before, dry_run)
    if not dry_run:
        logger.info("retention: %s", report.summary_line())
    return report


def purge_campaign(campaign: Campaign, *, dry_run: bool = False, batch: int = BATCH) -> int:
    """Freeze the campaign's counts and cost, then blank its messages; returns rows blanked."""
    if dry_run:
        return purge_content(campaign.messages.all(), batch, dry_run=True)
    freeze_counts(campaign)
    blanked = purge_content(campaign.messages.all(), batch)
    Campaign.objects.filter(pk=campaign.pk).update(content_purged_at=timezone.now())
    return blanked


def freeze_counts(campaign: Campaign) -> None:
    """Store final counts and cost where the campaign ended without them (cancelled ones)."""
    if campaign.final_counts and campaign.final_cost is not None:
        return
    with transaction.atomic():
        counts = campaign.messages.status_counts()
        handed_over = campaign.messages.filter(sent_at__isnull=False)
        cost = handed_over.aggregate(total=Sum("cost"))["total"]
        Campaign.objects.filter(pk=campaign.pk).update(final_counts=counts, final_cost=cost or 0)


def daily_purge() -> str:
    """django-q2 schedule `herald-retention-purge`: purge by HERALD_RETENTION_DAYS, if set."""
    days = settings.HERALD_RETENTION_DAYS
    if days <= 0:
        return "retention is off (HERALD_RETENTION_DAYS=0)"
    return purge(days).summary_line()


# Erasure: a campaign's stored estimate shows a few recipients' rendered messages.


def erase_samples(
    sender: Any, phones: list[str], contact_ids: list[int], **kwargs: Any
) -> dict[str, int]:
    """Drop estimate samples that name an erased contact or carry their number."""
    names = set()
    for first, last in Contact.objects.filter(pk__in=contact_ids).values_list(
        "first_name", "last_name"
    ):
        names.add(" ".join(filter(None, [first, last])))
    names.discard("")
    scrubbed = 0
    for campaign in Campaign.objects.exclude(estimate={}).only("pk", "estimate").iterator():
        samples = campaign.estimate.get("samples", [])
        kept = [s for s in samples if not _names_them(s, names, phones)]
        if kept != samples:
            estimate = {**campaign.estimate, "samples": kept}
            Campaign.objects.filter(pk=campaign.pk).update(estimate=estimate)
            scrubbed += 1
    return {"campaign previews": scrubbed}


def _names_them(sample: dict[str, Any], names: set[str], phones: list[str]) -> bool:
    body = str(sample.get("body", ""))
    return sample.get("contact") in names or any(phone in body for phone in phones)


def erase_test_numbers(sender: Any, phones: list[str], **kwargs: Any) -> dict[str, int]:
    """A staff member's phone erased: it is no longer anyone's test number."""
    deleted, _ = TestNumber.objects.filter(phone__in=phones).delete()
    return {"test numbers": deleted}


erasing.connect(erase_samples, dispatch_uid="campaigns.privacy.erase_samples")
erasing.connect(erase_test_numbers, dispatch_uid="campaigns.privacy.erase_test_numbers")
