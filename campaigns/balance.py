"""A campaign sends only while its account's balance covers what it still has to send.

Two things mark an account low (messaging.balance.report_low): BulkSMSRates's
`balance.low` webhook, and a balance read here below what a campaign still has to send.
Either way `pause_sending`, connected to `balance_low`, pauses every sending campaign of
that account with the reason. The engine asks `may_send` at each run; it reads the
balance at most once per READ_EVERY per account (ProviderAccount.balance_checked_at), so
sending is never slowed by it. Resuming a campaign of a low account reads it again: enough
for what is left clears the mark, too little refuses the resume with both figures.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from campaigns.models import Campaign, TransitionNotAllowed
from messaging.balance import report_low
from messaging.exceptions import ProviderError
from messaging.models import Message, ProviderAccount

logger = logging.getLogger(__name__)

#: A balance read this recently is used as it is, not asked for again.
READ_EVERY = timedelta(minutes=5)
#: Rows whose cost is still to come: not yet handed over to the provider.
UNSENT = (Message.Status.PENDING, Message.Status.SENDING)


class BalanceTooLow(TransitionNotAllowed):
    """A resume refused: the account's balance does not cover what the campaign still sends."""


def pause_sending(sender: Any, account: ProviderAccount, reason: str, **kwargs: Any) -> int:
    """Pause every sending campaign of `account` (as the engine, `reason` shown to staff);
    how many were paused. Connected to messaging.balance.balance_low."""
    paused = 0
    for campaign in Campaign.objects.filter(
        provider_account=account, status=Campaign.Status.SENDING
    ):
        # Staff may have paused or cancelled it meanwhile: that stands.
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=reason)
            paused += 1
    return paused


def may_send(campaign: Campaign) -> bool:
    """Whether the engine may go on sending `campaign`; when its account's balance does not
    cover what it still has to send, the account is marked low (its campaigns paused)."""
    account = ProviderAccount.objects.get(pk=campaign.provider_account_id)
    available, fresh = balance_of(account)
    if available is None:
        if account.balance_low_at is None:
            return True
        # Reported low, and no read says otherwise: it stays paused until resumed.
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=account.balance_low_reason)
        return False
    # Summing a built campaign's unsent rows waits for a new read; an unbuilt one's
    # estimate costs nothing to look at.
    if not fresh and account.balance_low_at is None and campaign.materialised_at is not None:
        return True
    need = minor_units(cost_left(campaign))
    if available >= need and (fresh or account.balance_low_at is None):
        clear_low(account)
        return True
    if available >= need:  # still low by a report no read has answered since
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=account.balance_low_reason)
        return False
    data = {"available": available, "currency": account.currency}
    report_low(account, data, source=f"balance below campaign {campaign.pk}'s cost")
    return False


def check_resume(campaign: Campaign) -> None:
    """Refuse (BalanceTooLow) to resume a campaign of an account marked low unless the
    balance, read now, covers what it still has to send; enough clears the mark."""
    account = ProviderAccount.objects.get(pk=campaign.provider_account_id)
    paused = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.PAUSED)
    if account.balance_low_at is None or not paused.exists():
        return  # not paused: the status move refuses it in its own words
    try:
        available = read_balance(account)
    except ProviderError as error:
        raise BalanceTooLow(
            f"The balance at {account.name} could not be read ({error}): try again shortly."
        ) from error
    need = minor_units(cost_left(campaign))
    # A gateway that cannot tell its balance leaves the decision to whoever resumes.
    if available is not None and available < need:
        raise BalanceTooLow(
            f"The balance at {account.name} is {shown(available, account.currency)}; this "
            f"campaign needs {shown(need, account.currency)} to finish. Top up, then resume."
        )
    clear_low(account)


def balance_of(account: ProviderAccount) -> tuple[int | None, bool]:
    """The account's available balance in minor units (None: unknown), and whether it was
    read just now; read from the gateway only when the last read is READ_EVERY old."""
    now = timezone.now()
    stale = Q(balance_checked_at__isnull=True) | Q(balance_checked_at__lte=now - READ_EVERY)
    # Whoever moves the mark reads; every other worker takes the last figure.
    if not ProviderAccount.objects.filter(stale, pk=account.pk).update(balance_checked_at=now):
        return account.balance_available, False
    try:
        return read_balance(account), True
    except ProviderError as error:
        logger.warning("balance of %s unreadable: %s", account.name, error)
        return account.balance_available, False


def read_balance(account: ProviderAccount) -> int | None:
    """Ask the gateway now and keep the figure; None when it cannot say in our currency."""
    read = getattr(account.get_backend(), "balance", None)
    reading = read() if read is not None else None
    if reading is None:
        return None
    if reading.currency and reading.currency.upper() != account.currency.upper():
        logger.warning(
            "balance of %s is in %s, prices in %s: not compared",
            account.name,
            reading.currency[:3],
            account.currency,
        )
        return None
    ProviderAccount.objects.filter(pk=account.pk).update(
        balance_available=reading.available, balance_checked_at=timezone.now()
    )
    account.balance_available = reading.available
    return int(reading.available)


def clear_low(account: ProviderAccount) -> None:
    """The balance covers sending again: the account is no longer marked low."""
    if ProviderAccount.objects.filter(pk=account.pk, balance_low_at__isnull=False).update(
        balance_low_at=None, balance_low_reason=""
    ):
        logger.info("balance at %s no longer low", account.name)
    account.balance_low_at, account.balance_low_reason = None, ""


def cost_left(campaign: Campaign) -> Decimal:
    """What the campaign still has to send, in its account's currency: its rows not yet
    handed over, or before they are all built (nothing is sent until then) its estimate."""
    unsent = campaign.messages.filter(status__in=UNSENT).aggregate(total=Sum("cost"))["total"]
    left = Decimal(unsent or 0)
    if campaign.materialised_at is None:
        left = max(left, Decimal(str(campaign.estimate.get("cost") or 0)))
    return left


def minor_units(amount: Decimal) -> int:
    """`amount` in pence or cents, rounded up: a part of a penny still has to be paid."""
    return int((amount * 100).to_integral_value(rounding=ROUND_CEILING))


def shown(minor: int, currency: str) -> str:
    return f"{minor / 100:.2f} {currency}"
