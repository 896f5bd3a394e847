"""What campaigns announce (contacts.events explains how)."""

from __future__ import annotations

from contacts.events import Announcement

#: A campaign moved from one status to another; sent with `transition` (the
#: CampaignTransition just written, its campaign loaded).
status_changed = Announcement("campaign.status_changed")
