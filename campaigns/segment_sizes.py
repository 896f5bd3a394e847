"""A segment's size for the lists that show many at once (the dashboard's and the admin's).

Counting a segment over a million contacts takes up to a second; a list of twenty would
take twenty. Each size is kept for SIZE_SECONDS under a key that changes with the segment's
rules, so an edit shows its new size at once and new contacts within a minute. The builder's
live count and a campaign's preview never read this cache: they count afresh.
"""

from __future__ import annotations

import hashlib
import json

from django.core.cache import cache

from campaigns.segments import Segment

SIZE_SECONDS = 60


def cache_key(segment: Segment) -> str:
    what = json.dumps([segment.pk, segment.match_any, segment.rules], sort_keys=True)
    return "segments:size:" + hashlib.sha256(what.encode()).hexdigest()[:32]


def segment_size(segment: Segment) -> int:
    """How many contacts match now, or matched at most SIZE_SECONDS ago."""
    key = cache_key(segment)
    size = cache.get(key)
    if size is None:
        size = segment.count()
        cache.set(key, size, SIZE_SECONDS)
    return int(size)
