"""One test message of a draft campaign to a staff member's own phone, before it is submitted.

It goes through the campaign's own provider account and sender, rendered for the
first contact the campaign would send to, so what arrives is what recipients get.
Like `provider send-test` it is a Message of no campaign, marked `is_test`: the
engine never counts, retries or completes it, and no campaign figure includes it.

A test is a message no approver has seen, so it goes only to one of the sender's own
test numbers (campaigns.TestNumber, registered by other staff), at most
HERALD_TEST_SENDS_PER_HOUR an hour per user, each one in the audit log. Every door
(dashboard, admin, CLI) sends through `send_test`, so none can skip a rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.formats import time_format

from audit.models import AuditEvent
from campaigns.actions import CHANGE, REFUSALS
from campaigns.audience import AudienceRule
from campaigns.content import Content
from campaigns.models import Campaign, CampaignTransition, TestNumber, TransitionNotAllowed
from contacts.models import ERASED_REFUSAL, Contact, ErasedNumber
from contacts.phones import redact
from messaging.dispatch import send_claimed
from messaging.exceptions import AccountError
from messaging.links import new_codes
from messaging.models import Link, Message
from messaging.rendering import segments_of


def first_recipient(campaign: Campaign) -> Contact | None:
    """The first contact the campaign would send to (the preview's first sample)."""
    ids = AudienceRule(campaign).first_queued(1)
    return Contact.objects.filter(pk__in=ids).first()


def sample_fields(campaign: Campaign) -> dict[str, str]:
    """What the placeholders read: the first recipient's values, or none (so the defaults)."""
    content = Content.reading(campaign)  # what any A/B variant reads
    ids = AudienceRule(campaign).first_queued(1)
    rows = content.with_fields(Contact.objects.filter(pk__in=ids)).values_list(*content.columns)
    values = rows.first() if content.columns else None
    return content.fields_of(values) if values else {}


TEST_SEND_WINDOW = timedelta(hours=1)


def send_test(campaign: Campaign, phone: str, by: Any, variant: str = "A") -> Message:
    """Send one test of `campaign` (its A/B variant `variant`) to `phone` (E.164), one of
    `by`'s own test numbers, now; note it on the campaign and in the audit log. Refused
    past the hourly limit."""
    if by is None or not by.has_perm(CHANGE):
        raise PermissionDenied(REFUSALS[CHANGE])
    if variant not in (campaign.variant_labels or ["A"]):
        labels = ", ".join(campaign.variant_labels) or "A"
        raise ValidationError(f"This campaign has no variant {variant}: it has {labels}.")
    if campaign.status != Campaign.Status.DRAFT:
        label = campaign.get_status_display().lower()
        raise TransitionNotAllowed(f"Tests are sent from drafts; this campaign is {label}.")
    _check_can_send(campaign)
    if ErasedNumber.objects.includes(phone):
        raise ValidationError(ERASED_REFUSAL)
    check_own_number(by, phone)
    message = _reserve(campaign, phone, by, variant)
    claimed = Message.objects.filter(pk=message.pk).claim(1)
    account_error = send_claimed(claimed) if claimed else None
    _give_up_if_unsent(message, account_error)
    _record(campaign, message, by)
    message.refresh_from_db()
    return message


def check_own_number(user: Any, phone: str) -> None:
    """Refuse a number that is not one of `user`'s test numbers."""
    if not TestNumber.objects.of(user).filter(phone=phone).exists():
        raise ValidationError(
            f"{redact(phone)} is not one of your test numbers: tests go only to numbers "
            "registered as yours by other staff (the admin's Test numbers page)."
        )


def sends_left(user: Any, now: datetime | None = None) -> tuple[int, datetime | None]:
    """How many more tests `user` may send this hour, and when the next one frees up."""
    limit = settings.HERALD_TEST_SENDS_PER_HOUR
    now = now or timezone.now()
    recent = AuditEvent.objects.filter(
        action=AuditEvent.Action.TEST_SEND, actor_id=user.pk, at__gt=now - TEST_SEND_WINDOW
    )
    sent = list(recent.order_by("at").values_list("at", flat=True))
    left = max(limit - len(sent), 0)
    if left or limit <= 0:
        return left, None
    # Below the limit again once the oldest of the last `limit` tests is an hour old.
    return 0, sent[len(sent) - limit] + TEST_SEND_WINDOW


def _check_rate(user: Any) -> None:
    left, frees_at = sends_left(user)
    if left:
        return
    limit = settings.HERALD_TEST_SENDS_PER_HOUR
    if frees_at is None:
        raise ValidationError("Test sends are turned off (HERALD_TEST_SENDS_PER_HOUR is 0).")
    raise ValidationError(
        f"You have sent {limit} test message{'s' if limit != 1 else ''} in the last hour, the "
        f"most allowed: the next can go at {time_format(timezone.localtime(frees_at))}."
    )


def _reserve(campaign: Campaign, phone: str, by: Any, variant: str = "A") -> Message:
    """Count the hour's tests and write this one and its audit row, as one step per user:
    the count is the database's, so every web worker and the CLI share it."""
    with transaction.atomic():
        # Two tabs at once must not both take the hour's last test (SQLite: every
        # transaction is IMMEDIATE, so they queue anyway).
        get_user_model()._default_manager.select_for_update().filter(pk=by.pk).exists()
        _check_rate(by)
        message = _test_message(campaign, phone, variant)
        detail: dict[str, Any] = {"message": message.pk, "to": redact(phone)}
        if campaign.variant_bodies:
            detail["variant"] = variant
        AuditEvent.record(AuditEvent.Action.TEST_SEND, actor=by, obj=campaign, detail=detail)
    return message


def _check_can_send(campaign: Campaign) -> None:
    account = campaign.provider_account
    if not campaign.message_body.strip():
        raise ValidationError("The campaign has no message body yet.")
    if not account.is_active:
        raise ValidationError(f"Provider account {account} is disabled.")
    if campaign.channel not in account.get_backend().channels:
        raise ValidationError(f"Provider account {account} cannot send {campaign.channel}.")


def _test_message(campaign: Campaign, phone: str, variant: str = "A") -> Message:
    content = Content.of(campaign, variant)
    rendered = content.render(sample_fields(campaign))
    shortened = content.shortened(rendered)
    codes = new_codes(len(shortened.urls)) if shortened else []
    text, parameters = rendered.body, rendered.parameters
    if shortened is not None and content.links is not None:
        text, parameters = shortened.fill(content.links.base, codes)
    encoding, segments = segments_of(text)
    account = campaign.provider_account
    message = Message.objects.create(
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
        template_params=list(parameters),
        client_ref=Message.new_client_ref(),
        is_test=True,
    )
    if shortened is not None and content.links is not None:
        # Working links, as the campaign's own will be; counted on the link alone.
        Link.objects.bulk_create(
            Link(code=code, message=message, url=content.links.destination(url))
            for code, url in zip(codes, shortened.urls, strict=True)
        )
    return message


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
