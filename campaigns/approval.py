"""An approval binds exactly what is sent.

At submit the preview's figures and a fingerprint of every distinct rendering it saw
are kept (`ApprovedContent`). When the campaign is built, after approval, the build
refuses anything else: content whose hash changed (the campaign or its message
template edited), a recipient whose text is not one of the approved renderings (a
contact's attributes changed, or a new contact with new values joined), or an
audience grown beyond HERALD_APPROVAL_GROWTH_SHARE / _RECIPIENTS. Such a campaign is
held for approval again, with the reason and samples of old and new, and nothing of
it is sent. Opt-outs still win at send time, whatever was approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from campaigns.content import FINGERPRINT_BYTES, Rendered

if TYPE_CHECKING:
    from campaigns.models import Campaign
    from campaigns.preview import Estimate


class ContentChanged(Exception):
    """What is about to be built is not what was approved."""

    def __init__(self, reason: str, new_samples: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.new_samples = new_samples or []


def pack(fingerprints: set[bytes]) -> bytes:
    return b"".join(sorted(fingerprints))


def unpack(packed: bytes) -> set[bytes]:
    size = FINGERPRINT_BYTES
    return {bytes(packed[i : i + size]) for i in range(0, len(packed), size)}


def growth_allowed(approved_queued: int) -> int:
    """How many more queued recipients than approved a build may reach (the smaller limit)."""
    share = int(approved_queued * settings.HERALD_APPROVAL_GROWTH_SHARE)
    return min(share, settings.HERALD_APPROVAL_GROWTH_RECIPIENTS)


@dataclass
class Binding:
    """What the build checks against, read once per build."""

    campaign: Campaign
    fingerprints: set[bytes]
    approved_queued: int
    limit: int = 0

    @classmethod
    def of(cls, campaign: Campaign) -> Binding:
        """The campaign's approval; ContentChanged when its content no longer hashes the same."""
        if not campaign.content_hash or campaign.compute_content_hash() != campaign.content_hash:
            raise ContentChanged(
                "The campaign changed after it was approved (it, its message template or a "
                "segment it uses was edited)."
            )
        record = getattr(campaign, "approved_content", None)
        if record is None:
            raise ContentChanged("No record of the approved messages was kept: approve it again.")
        queued = int(campaign.estimate.get("queued", campaign.estimate.get("sendable", 0)))
        binding = cls(campaign, unpack(record.fingerprints), queued)
        binding.limit = queued + growth_allowed(queued)
        return binding

    def check_rendering(self, rendered: Rendered, label: str) -> None:
        """ContentChanged unless `rendered` is one of the approved texts (ask once per text)."""
        if rendered.fingerprint not in self.fingerprints:
            raise ContentChanged(
                "Some recipients' messages differ from the approved ones (their contact "
                "details changed, or new contacts joined with new values).",
                [{"contact": label, "body": rendered.body}],
            )

    def check_audience(self, queued: int) -> None:
        if queued > self.limit:
            grown = queued - self.approved_queued
            share = grown / self.approved_queued if self.approved_queued else 1.0
            raise ContentChanged(
                f"The audience grew since approval: {queued:,} recipients instead of "
                f"{self.approved_queued:,} (+{grown:,}, +{share:.0%}; up to "
                f"+{growth_allowed(self.approved_queued):,} goes without approving again)."
            )


def record_estimate(campaign: Campaign, figures: Estimate) -> None:
    """Keep the fingerprints of what the preview saw, to be bound by the approval."""
    from campaigns.models import ApprovedContent

    ApprovedContent.objects.update_or_create(
        campaign=campaign, defaults={"fingerprints": pack(figures.renderings)}
    )


def changes_for_hold(campaign: Campaign, error: ContentChanged, new: Estimate) -> dict[str, Any]:
    """What the approver is shown: why, and the approved samples beside the new ones."""
    return {
        "reason": error.reason,
        "old_samples": list(campaign.estimate.get("samples", [])),
        "new_samples": error.new_samples or [dict(s.__dict__) for s in new.samples],
        "old_figures": {k: campaign.estimate.get(k) for k in ("queued", "segments", "cost")},
        "new_figures": {"queued": new.queued, "segments": new.segments, "cost": str(new.cost)},
    }
