"""The send engine's campaign side: build the audience into Message rows, then dispatch.

The Message rows are the truth; this code may be interrupted anywhere and run
again (by a repeated task or a second worker) without losing or doubling a message.
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.utils import timezone

from campaigns.models import Campaign, TransitionNotAllowed
from contacts.importing import chunked
from contacts.models import Contact, OptOut
from messaging.dispatch import send_claimed
from messaging.models import Message
from messaging.rendering import render, segments_of

logger = logging.getLogger(__name__)

MATERIALISE_CHUNK = 2000
#: Most rows one worker holds at once (one BulkSMSRates request carries 10,000).
MAX_CLAIM = 10_000


def materialise(campaign: Campaign) -> dict[str, int]:
    """Snapshot the audience into Message rows, once per (campaign, phone).

    Safe to run again after a crash: rows already there are left alone.
    Opted-out recipients are kept as `skipped` so the counts add up.
    """
    stats = {"audience": 0, "queued": 0, "opted_out": 0}
    audience = campaign.audience().order_by("pk").iterator(chunk_size=MATERIALISE_CHUNK)
    for chunk in chunked(audience, MATERIALISE_CHUNK):
        opted_out = OptOut.objects.phones(campaign.channel, [c.phone for c in chunk])
        rows = [_message_for(campaign, contact, contact.phone in opted_out) for contact in chunk]
        Message.objects.bulk_create(rows, ignore_conflicts=True)
        stats["audience"] += len(chunk)
        stats["opted_out"] += len(opted_out)
        stats["queued"] += len(chunk) - len(opted_out)
    Campaign.objects.filter(pk=campaign.pk).update(
        audience_stats=stats, materialised_at=timezone.now()
    )
    campaign.refresh_from_db(fields=["audience_stats", "materialised_at"])
    logger.info("campaign %s: materialised %s", campaign.pk, stats)
    return stats


def _message_for(campaign: Campaign, contact: Contact, opted_out: bool) -> Message:
    body = render(campaign.message_body, contact.template_fields())
    encoding, segments = segments_of(body)
    return Message(
        campaign=campaign,
        contact=contact,
        provider_account=campaign.provider_account,
        channel=campaign.channel,
        phone=contact.phone,
        sender=campaign.sender_id,
        body=body,
        encoding=encoding,
        segments=segments,
        cost=segments * campaign.provider_account.price_per_segment,
        client_ref=Message.new_client_ref(),
        status=Message.Status.SKIPPED if opted_out else Message.Status.PENDING,
        skip_reason=Message.SkipReason.OPTED_OUT if opted_out else "",
    )


def run_campaign(campaign: Campaign) -> None:
    """Start the campaign if it is due, then send batches until nothing is due."""
    if campaign.status == Campaign.Status.SCHEDULED and Campaign.objects.due().filter(
        pk=campaign.pk
    ):
        campaign.start()
        campaign.refresh_from_db()
    if campaign.status != Campaign.Status.SENDING:
        return
    if campaign.materialised_at is None:
        materialise(campaign)
    while dispatch_batch(campaign):
        pass
    campaign.complete_if_done()


def claim_size(campaign: Campaign) -> int:
    """Rows per round: the configured batch, or a full request for a bulk provider."""
    preferred = campaign.provider_account.get_backend().claim_size
    return min(preferred, MAX_CLAIM) if preferred else settings.HERALD_DISPATCH_BATCH_SIZE


def dispatch_batch(campaign: Campaign) -> bool:
    """Claim and send one batch; False when there is nothing to do (or we must stop)."""
    # Re-read each batch so a pause or cancel takes effect within one batch.
    if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists():
        return False
    batch = campaign.messages.all().claim(claim_size(campaign))
    if not batch:
        return False
    account_error = send_claimed(batch)
    if account_error is not None:
        # Staff may have paused or cancelled it meanwhile; the rows are back in pending either way.
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=f"Provider refused the account: {account_error}")
        return False
    return True
