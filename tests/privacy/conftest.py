"""A campaign sent through the real engine, with delivery reports and a webhook record."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.sending import run_campaign
from contacts.models import Contact, Group
from messaging import counts
from messaging.backends.base import StatusUpdate
from messaging.models import Message, ProviderAccount, StatusEvent, WebhookEvent

M = Message.Status
S = Campaign.Status


def send(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Submit, approve and run it to completion with the engine itself."""
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    run_campaign(campaign)
    campaign.refresh_from_db()
    return campaign


def report(message: Message, status: str, **fields: Any) -> None:
    """A delivery report for `message`, carrying its number the way providers do."""
    raw = {"to": message.phone.lstrip("+"), "status": status, "text": message.body}
    update = StatusUpdate(
        message, status, f"evt-{message.pk}-{status}", timezone.now(), raw=raw, **fields
    )
    message.apply_status(update)
    WebhookEvent.objects.create(
        provider_account=message.provider_account,
        webhook_id=f"wh-{message.pk}-{status}",
        event=f"message.{status}",
        raw=raw,
        applied_at=timezone.now(),  # applied above, as a worker would have
    )


@pytest.fixture
def sent_campaign(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> Campaign:
    """Completed: 4 recipients, 2 delivered, 1 failed (with a reason), 1 left at sent."""
    group = Group.objects.create(name="Customers")
    make_contacts(4, group)
    campaign = send(make_campaign(simulator, group), marketer, approver)
    messages = list(campaign.messages.order_by("pk"))
    for message in messages[:2]:
        report(message, M.DELIVERED)
    report(messages[2], M.FAILED, error_code="30003", error_message="Unreachable handset")
    campaign.refresh_from_db()
    return campaign


def age(campaign: Campaign, days: int) -> None:
    """Move a campaign, its messages' events and webhook records `days` into the past."""
    then = timezone.now() - timedelta(days=days)
    Campaign.objects.filter(pk=campaign.pk).update(completed_at=then, updated_at=then)
    campaign.messages.filter(sent_at__isnull=True).update(updated_at=then)
    StatusEvent.objects.filter(message__campaign=campaign).update(received_at=then)
    WebhookEvent.objects.update(received_at=then)
    Message.objects.filter(campaign__isnull=True).update(created_at=then)
    counts.recount([campaign.pk])  # history rewritten: the reports' days moved with it
