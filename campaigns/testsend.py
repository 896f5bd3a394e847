"""One test message of a draft campaign to a staff member's own phone, before it is submitted.

It goes through the campaign's own provider account and sender, rendered for the
first contact the campaign would send to, so what arrives is what recipients get.
Like `provider send-test` it is a Message of no campaign: the engine never counts,
retries or completes it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.audience import AudienceRule
from campaigns.content import Content
from campaigns.models import Campaign, CampaignTransition, TransitionNotAllowed
from contacts.models import ERASED_REFUSAL, Contact, ErasedNumber
from contacts.phones import redact
from messaging.dispatch import send_claimed
from messaging.exceptions import AccountError
from messaging.models import Message
from messaging.rendering import segments_of


def first_recipient(campaign: Campaign) -> Contact | None:
    """The first contact the campaign would send to (the preview's first sample)."""
    ids = AudienceRule(campaign).first_queued(1)
    return Contact.objects.filter(pk__in=ids).first()


def sample_fields(campaign: Campaign) -> dict[str, str]:
    """What the placeholders read: the first recipient's values, or none (so the defaults)."""
    content = Content.of(campaign)
    ids = AudienceRule(campaign).first_queued(1)
    rows = content.with_fields(Contact.objects.filter(pk__in=ids)).values_list(*content.columns)
    values = rows.first() if content.columns else None
    return content.fields_of(values) if values else {}


def send_test(campaign: Campaign, phone: str, by: Any) -> Message:
    """Send one test of `campaign` to `phone` (E.164) now, and note it on the campaign."""
    if campaign.status != Campaign.Status.DRAFT:
        label = campaign.get_status_display().lower()
        raise TransitionNotAllowed(f"Tests are sent from drafts; this campaign is {label}.")
    _check_can_send(campaign)
    if ErasedNumber.objects.includes(phone):
        raise ValidationError(ERASED_REFUSAL)
    message = _test_message(campaign, phone)
    claimed = Message.objects.filter(pk=message.pk).claim(1)
    account_error = send_claimed(claimed) if claimed else None
    _give_up_if_unsent(message, account_error)
    _record(campaign, message, by)
    message.refresh_from_db()
    return message


def _check_can_send(campaign: Campaign) -> None:
    account = campaign.provider_account
    if not campaign.message_body.strip():
        raise ValidationError("The campaign has no message body yet.")
    if not account.is_active:
        raise ValidationError(f"Provider account {account} is disabled.")
    if campaign.channel not in account.get_backend().channels:
        raise ValidationError(f"Provider account {account} cannot send {campaign.channel}.")


def _test_message(campaign: Campaign, phone: str) -> Message:
    content = Content.of(campaign)
    rendered = content.render(sample_fields(campaign))
    text = rendered.body
    encoding, segments = segments_of(text)
    account = campaign.provider_account
    return Message.objects.create(
        campaign=None,
        contact=None,
        provider_account=account,
        channel=campaign.channel,
        phone=phone,
        sender=campaign.sender_id,
        body=text,
        encoding=encoding,
        segments=segments,
        cost=segments * account.price_per_segment,
        template_id=content.whatsapp_template_id,
        template_params=list(rendered.parameters),
        client_ref=Message.new_client_ref(),
    )


def _give_up_if_unsent(message: Message, account_error: AccountError | None) -> None:
    """A test is tried once: left pending (account refused, gateway busy) it would wait forever,
    since nothing dispatches messages of no campaign. Say it failed, and why."""
    unsent = Message.objects.filter(pk=message.pk)
    if account_error is None:
        unsent.give_up()
    else:
        unsent.give_up(account_error.code, account_error.message)


def _record(campaign: Campaign, message: Message, by: Any) -> None:
    now = timezone.now()
    with transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(
            test_message=message, test_sent_by=by, test_sent_at=now
        )
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).get()
        CampaignTransition.objects.create(
            campaign=campaign,
            action="test",
            from_status=status,
            to_status=status,
            by=by,
            note=f"test sent to {redact(message.phone)}",
            at=now,
        )
    campaign.test_message, campaign.test_sent_by, campaign.test_sent_at = message, by, now
