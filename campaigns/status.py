"""A campaign's state and kept counts as scripts read them: `campaign status --json`,
`campaign list --json` and the API's campaigns all say it here, with the same keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from campaigns.models import Campaign, message_counts
from campaigns.variants import figures
from messaging import counts as counts_kept
from messaging.models import Message

M = Message.Status
#: The counts scripts are given, in this order; they rely on exactly these keys.
COUNT_KEYS: tuple[str, ...] = tuple(
    status.value
    for status in (M.PENDING, M.SENDING, M.SENT, M.DELIVERED, M.FAILED, M.SKIPPED, M.IN_DOUBT)
)


def counts_of(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """The COUNT_KEYS counts of each campaign, from the kept counts (a few rows each)."""
    every = message_counts(list(campaign_ids))
    return {pk: {key: found[key] for key in COUNT_KEYS} for pk, found in every.items()}


def summary(campaign: Campaign) -> dict[str, Any]:
    """{"id", "status", "counts", "clicks"}, and "variants" for an A/B campaign."""
    found: dict[str, Any] = {
        "id": campaign.pk,
        "status": campaign.status,
        "counts": counts_of([campaign.pk])[campaign.pk],
        "clicks": counts_kept.click_counts([campaign.pk])[campaign.pk],
    }
    if campaign.variant_bodies:
        found["variants"] = variants_of(campaign)
    return found


def variants_of(campaign: Campaign) -> list[dict[str, Any]]:
    """Each A/B variant's counts (COUNT_KEYS) and clicks, and whether it won."""
    return [
        {
            "variant": label,
            "counts": {key: each["counts"].get(key, 0) for key in COUNT_KEYS},
            "clicks": each["clicks"],
            "winner": label == campaign.ab_winner,
        }
        for label, each in figures(campaign).items()
    ]
