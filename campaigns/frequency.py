"""The frequency cap: at most N marketing messages per contact in any rolling D days.

The house setting (HERALD_FREQUENCY_CAP_MESSAGES / _DAYS, off by default) applies to
every campaign unless someone with `campaigns.override_frequency_cap` gave the campaign
its own cap, or none. Contacts over the cap are skipped with reason `frequency_cap` by
the audience rule, counted in the preview and bound at approval like every other reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone

from messaging.models import Message

OVERRIDE_PERMISSION = "campaigns.override_frequency_cap"
#: A campaign message counts against the cap unless it never went, or failed.
COUNTED = (
    Message.Status.PENDING,
    Message.Status.SENDING,
    Message.Status.SENT,
    Message.Status.DELIVERED,
    Message.Status.IN_DOUBT,
)


@dataclass(frozen=True)
class Cap:
    messages: int
    days: int

    def __str__(self) -> str:
        return f"at most {self.messages} per contact in {self.days} day{'s' * (self.days != 1)}"


def house_cap() -> Cap | None:
    """The cap every campaign has unless overridden; None when it is off."""
    messages, days = settings.HERALD_FREQUENCY_CAP_MESSAGES, settings.HERALD_FREQUENCY_CAP_DAYS
    return Cap(messages, days) if messages > 0 and days > 0 else None


def may_override(user: Any) -> bool:
    """Whether `user` may give a campaign a cap of its own, or none."""
    return bool(user and user.has_perm(OVERRIDE_PERMISSION))


def over_cap(
    cap: Cap, campaign_id: int | None, contact_ids: Iterable[int] | None = None
) -> QuerySet[Any]:
    """Ids (`contact_id`) of contacts already sent `cap.messages` campaign messages in the
    last `cap.days` days, by campaigns other than `campaign_id`."""
    since = timezone.now() - timedelta(days=cap.days)
    messages = Message.objects.filter(
        campaign_id__isnull=False,
        contact_id__isnull=False,
        is_test=False,
        status__in=COUNTED,
        created_at__gte=since,
    )
    if campaign_id is not None:
        messages = messages.exclude(campaign_id=campaign_id)
    if contact_ids is not None:
        messages = messages.filter(contact_id__in=list(contact_ids))
    counted = messages.order_by().values("contact_id").annotate(sent=Count("pk"))
    return counted.filter(sent__gte=cap.messages).values("contact_id")
