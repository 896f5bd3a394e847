"""A/B variants: two to four texts of one campaign, each recipient given one for good.

A campaign's body (or template) is variant A; `variant_bodies` holds B, C and D. All
of them are previewed and approved together (the content hash covers them, and the
approval binds every variant's renderings).

Who gets which is worked out from the campaign and contact ids alone (`Assigner`), so
a rebuild never moves anyone. In a split each variant goes to its share of the
audience. In a test the variants go, in equal parts, to the test share; the rest of
the audience is built only once the winner is picked (`decide`), `ab_test_hours`
after the test share was built: the higher click-through rate (unique clicks per
delivered message) or delivery rate (delivered per message handed over) wins, a tie
goes to A, and the decision is kept with the figures it was made on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from messaging import counts
from messaging.links import find_urls, link_base

if TYPE_CHECKING:
    from campaigns.models import Campaign

logger = logging.getLogger(__name__)

MAX_VARIANTS = 4
#: Shares are worked in basis points: 10,000 make the whole audience.
WHOLE = 10_000


def labels_of(count: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(count)]


def parse_split(text: str) -> list[int]:
    """ "50,50" -> [50, 50]; ValueError when it is not whole numbers."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"write the split as whole percentages, one per variant: {text!r}")
    return [int(part) for part in parts]


def check_variants(campaign: Campaign) -> None:
    """ValidationError naming what is wrong with the campaign's variants and mode."""
    from campaigns.models import ABMode, WinnerBy, check_variables

    bodies = campaign.variant_bodies
    if not bodies:
        return
    if not isinstance(bodies, list) or not all(isinstance(b, str) for b in bodies):
        raise ValidationError({"variant_bodies": "Give the other variants as a list of texts."})
    if len(bodies) + 1 > MAX_VARIANTS:
        raise ValidationError({"variant_bodies": f"At most {MAX_VARIANTS} variants, A to D."})
    for label, body in zip(labels_of(len(bodies) + 1)[1:], bodies, strict=True):
        if not body.strip():
            raise ValidationError({"variant_bodies": f"Variant {label} has no text."})
        check_variables(body, field="variant_bodies")
    count = len(bodies) + 1
    if campaign.ab_mode == ABMode.SPLIT and campaign.ab_split:
        split = campaign.ab_split
        if (
            not isinstance(split, list)
            or len(split) != count
            or not all(isinstance(p, int) and p > 0 for p in split)
            or sum(split) != 100
        ):
            raise ValidationError(
                {
                    "ab_split": f"Give {count} whole percentages above 0, one per variant "
                    f"(A first), adding up to 100: e.g. {','.join(equal_split(count))}."
                }
            )
    if campaign.ab_mode == ABMode.TEST and campaign.ab_winner_by == WinnerBy.CLICKS:
        from campaigns.content import Content

        texts = [campaign.message_body, *bodies]
        # A WhatsApp template's parameters are filled from each recipient's fields, and
        # the URLs found there become short links too: such a campaign may have links
        # that no text shows.
        if not any(find_urls(text) for text in texts) and not Content.of(campaign).parameters:
            raise ValidationError(
                {
                    "ab_winner_by": "No variant has a link to count clicks on: pick the "
                    "winner by delivery rate, or add a link."
                }
            )
        if not (link_base() and campaign.track_links):
            raise ValidationError(
                {
                    "ab_winner_by": "Clicks are counted on short links only, and this "
                    "campaign's links go out as written (HERALD_LINK_BASE unset, or "
                    "“Shorten and count links” off): pick the winner by delivery rate."
                }
            )


def equal_split(count: int) -> list[str]:
    base, extra = divmod(100, count)
    return [str(base + (1 if i < extra else 0)) for i in range(count)]


def frozen_variants(campaign: Campaign) -> dict[str, Any]:
    """What an approval binds of the variants: their texts and how they are sent."""
    from campaigns.models import ABMode

    frozen: dict[str, Any] = {"bodies": list(campaign.variant_bodies), "mode": campaign.ab_mode}
    if campaign.ab_mode == ABMode.SPLIT:
        frozen["split"] = list(campaign.ab_split)
    else:
        frozen["test"] = [campaign.ab_test_share, campaign.ab_test_hours, campaign.ab_winner_by]
    return frozen


def shares(campaign: Campaign) -> dict[str, int]:
    """Each variant's share of the audience in basis points; in a test, of the test share
    alone (the rest goes to the winner)."""
    from campaigns.models import ABMode

    labels = campaign.variant_labels
    # A test's variants share its test share; the rest of the audience waits for the winner.
    whole = campaign.ab_test_share * 100 if campaign.ab_mode == ABMode.TEST else WHOLE
    percents = campaign.ab_split if campaign.ab_mode == ABMode.SPLIT and campaign.ab_split else []
    if percents:
        return {label: p * 100 for label, p in zip(labels, percents, strict=True)}
    base, extra = divmod(whole, len(labels))
    return {label: base + (1 if i < extra else 0) for i, label in enumerate(labels)}


def point(campaign_id: int, contact_id: int) -> int:
    """Where a contact falls, 0 to WHOLE - 1: the same for the same two ids, always."""
    digest = hashlib.blake2b(f"{campaign_id}:{contact_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % WHOLE


@dataclass
class Assigner:
    """Which variant each contact of one campaign gets ("" : the rest of a test, built
    for the winner once it is picked)."""

    campaign_id: int
    bounds: list[tuple[int, str]]  # (upper bound in basis points, label), ascending

    @classmethod
    def of(cls, campaign: Campaign) -> Assigner:
        bounds, upper = [], 0
        for label, share in shares(campaign).items():
            upper += share
            bounds.append((upper, label))
        return cls(campaign.pk, bounds)

    def variant(self, contact_id: int) -> str:
        at = point(self.campaign_id, contact_id)
        for upper, label in self.bounds:
            if at < upper:
                return label
        return ""


# The test's decision.


def figures(campaign: Campaign) -> dict[str, dict[str, Any]]:
    """Each variant's messages and clicks, from the kept counts, with its rates."""
    keys = counts.kept([campaign.pk], counts.VARIANT)[campaign.pk]
    result = {}
    for label in campaign.variant_labels:
        prefix = f"{counts.VARIANT}{label}:"
        statuses = {
            key.removeprefix(f"{prefix}status:"): n
            for key, n in keys.items()
            if key.startswith(f"{prefix}status:")
        }
        delivered = statuses.get("delivered", 0)
        failed = statuses.get("failed", 0)
        handed = statuses.get("sent", 0) + delivered + failed
        unique = keys.get(f"{prefix}{counts.CLICKS_UNIQUE}", 0)
        result[label] = {
            "counts": statuses,
            "clicks": {"unique": unique, "total": keys.get(f"{prefix}{counts.CLICKS_TOTAL}", 0)},
            "messages": sum(statuses.values()),
            "handed_over": handed,
            "delivered": delivered,
            "click_through_rate": round(unique / delivered, 4) if delivered else 0.0,
            "delivery_rate": round(delivered / handed, 4) if handed else 0.0,
        }
    return result


def pick(campaign: Campaign, found: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(winner, why): the best rate of the campaign's measure; a tie goes to A."""
    from campaigns.models import WinnerBy

    rate = "click_through_rate" if campaign.ab_winner_by == WinnerBy.CLICKS else "delivery_rate"
    best = max(found[label][rate] for label in found)
    leaders = [label for label in found if found[label][rate] == best]
    winner = leaders[0]  # labels are in order: a tie goes to the earliest, A first
    name = "click-through rate" if rate == "click_through_rate" else "delivery rate"
    if len(leaders) > 1:
        why = f"a tie on {name} ({best:.1%}) between {', '.join(leaders)}: it goes to {winner}"
    else:
        why = f"the highest {name}: {best:.1%}"
    return winner, why


def decide(campaign: Campaign) -> str:
    """Pick the test's winner now, keep the decision, and build the rest of the audience
    with it (the engine is woken). Returns the winner ("" when it was decided already)."""
    from campaigns.models import Campaign as Model

    with transaction.atomic():
        locked = Model.objects.select_for_update().get(pk=campaign.pk)
        if not locked.waiting_for_winner:
            return ""
        found = figures(locked)
        winner, why = pick(locked, found)
        decision = {
            "winner": winner,
            "by": locked.ab_winner_by,
            "why": why,
            "decided_at": timezone.now().isoformat(),
            "variants": found,
        }
        stats = dict(locked.audience_stats)
        stats["after"] = 0  # the rest of the audience is built afresh, for the winner
        Model.objects.filter(pk=locked.pk).update(
            ab_winner=winner, ab_decision=decision, audience_stats=stats, materialised_at=None
        )
        from audit.models import AuditEvent

        AuditEvent.record(
            AuditEvent.Action.AB_DECIDED,
            actor=None,
            obj=locked,
            detail={"winner": winner, "why": why},
        )
    logger.info("campaign %s: A/B winner %s (%s)", campaign.pk, winner, why)
    campaign.refresh_from_db()
    campaign._wake_engine()
    return winner


def decide_due() -> list[int]:
    """Every test whose time is up: decided now. Returns their ids."""
    from campaigns.models import ABMode
    from campaigns.models import Campaign as Model

    due = Model.objects.filter(
        status__in=(Model.Status.SENDING, Model.Status.PAUSED),
        ab_mode=ABMode.TEST,
        ab_winner="",
        ab_test_ends_at__lte=timezone.now(),
    ).exclude(variant_bodies=[])
    decided = []
    for campaign in due.select_related("provider_account"):
        if decide(campaign):
            decided.append(campaign.pk)
    return decided


def test_ends(hours: int) -> Any:
    return timezone.now() + timedelta(hours=hours)
