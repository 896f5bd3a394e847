"""An account's money at its gateway: a low balance stops its campaigns until topped up.

`report_low` records it (from BulkSMSRates's balance.low webhook, or a balance read
below what the next campaign needs) and sends `balance_low`: the campaigns app, above
this one, connects to it and pauses that account's sending campaigns with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal
from django.utils import timezone

from messaging.models import ProviderAccount

logger = logging.getLogger(__name__)

#: Sent with `account` and `reason` when an account's balance is found too low to send.
balance_low = Signal()


def report_low(account: ProviderAccount, data: dict[str, Any], source: str) -> str:
    """Note that `account`'s balance is low (`data` as the provider gave it: balance,
    available, currency, low_balance_threshold in minor units), and say so to whoever
    pauses campaigns. Returns what was done, for the webhook record."""
    available = next(
        (data[key] for key in ("available", "balance") if isinstance(data.get(key), int)), None
    )
    given = data.get("currency")
    currency = given[:3] if isinstance(given, str) else account.currency
    shown = f" ({available / 100:.2f} {currency} left)" if available is not None else ""
    reason = f"Balance low at {account.name}{shown}: top up, then resume."
    now = timezone.now()
    ProviderAccount.objects.filter(pk=account.pk).update(
        balance_low_at=now,
        balance_low_reason=reason[:300],
        **(
            {"balance_available": available, "balance_checked_at": now}
            if available is not None
            else {}
        ),
    )
    account.refresh_from_db()
    logger.warning("balance low at %s (%s)", account.name, source)
    answers = balance_low.send(sender=ProviderAccount, account=account, reason=reason)
    paused = sum(int(result or 0) for _receiver, result in answers)
    return f"balance low: {paused} campaign(s) paused"
