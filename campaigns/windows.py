"""Quiet hours: when a campaign may message a recipient, by the recipient's own clocks.

Pure functions, no database. The send engine resolves each recipient's zones once
(`recipient_zones`), groups recipients by zone set, and asks the campaign's `Window`
when that set is open (`is_open`) or will next be (`next_open`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, reduce
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contacts.phones import time_zones_for

#: How far ahead `next_open` looks; past this a zone set counts as never open.
NEXT_OPEN_HORIZON = timedelta(days=8)

# Offsets are sampled this often to find DST transitions; no zone changes offset twice
# within an hour.
_OFFSET_PROBE_STEP = timedelta(hours=1)

Span = tuple[datetime, datetime]


# --- Which zones a recipient is in -------------------------------------------------------


def recipient_zones(phone: str, *, own_zone: str, fallback: str) -> tuple[str, ...]:
    """The zones a recipient's window applies in: its own, else its number's, else `fallback`.

    Sorted (as `time_zones_for` gives them), so it can key the groups the engine computes
    `next_open` for. A zone zoneinfo does not know (a typo, "Etc/Unknown") counts as unset.
    """
    if own_zone and _is_known_zone(own_zone):
        return (own_zone,)
    return _known_zones(time_zones_for(phone)) or (fallback,)


@lru_cache(maxsize=1024)  # one entry per answer in libphonenumber's data: ~300
def _known_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(zone for zone in zones if _is_known_zone(zone))


@lru_cache(maxsize=4096)  # contact zones are free text: bound the typos kept
def _is_known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- The daily window --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A daily send window on the recipient's wall clock; `end <= start` crosses midnight.

    Open when the clock shows start (inclusive) up to end (exclusive); None/None is always
    open. Only the clock counts: a window starting at 02:30 opens at 03:00 on a day that
    skips 02:00-03:00, and an hour repeated at fall-back is inside exactly when its clock
    time is (so a window may close and open again that night).
    """

    start: time | None = None
    end: time | None = None

    def __post_init__(self) -> None:
        if self.start is None and self.end is None:
            return
        if self.start is None or self.end is None:
            raise ValueError("a send window needs both a start and an end, or neither")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("send window times are wall-clock times: give them without a zone")
        if self.start == self.end:
            raise ValueError("a send window cannot start and end at the same time")

    @property
    def always_open(self) -> bool:
        return self.start is None

    def contains(self, clock: time) -> bool:
        """Whether a local clock showing `clock` is inside the window."""
        if self.start is None or self.end is None:
            return True
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def is_open(self, zones: Iterable[str], at: datetime) -> bool:
        """Whether `at` is inside the window in every one of `zones` (the strictest wins)."""
        return self._is_open_in(_zone_infos(zones), at)

    def next_open(
        self, zones: Iterable[str], after: datetime, within: timedelta = NEXT_OPEN_HORIZON
    ) -> datetime | None:
        """The earliest instant from `after` on that is inside the window in every zone.

        `after` itself when already open, else a UTC datetime. None when no instant in the
        next `within` is open in all the zones at once (their windows never overlap): the
        engine skips such a recipient with a reason rather than wait forever.
        """
        zone_infos = _zone_infos(zones)
        if self._is_open_in(zone_infos, after):
            return after
        begin = after.astimezone(UTC)
        stop = begin + within
        per_zone = [self._open_spans(zone, begin, stop) for zone in zone_infos]
        common = reduce(_intersect, per_zone)
        return next((max(start, begin) for start, end in common if end > begin), None)

    def _is_open_in(self, zones: list[ZoneInfo], at: datetime) -> bool:
        _require_aware(at)
        return all(self.contains(at.astimezone(zone).time()) for zone in zones)

    def _open_spans(self, zone: ZoneInfo, begin: datetime, stop: datetime) -> list[Span]:
        """The UTC spans in `begin`..`stop` when `zone`'s clock is inside the window."""
        spans: list[Span] = []
        for segment_start, segment_end, offset in _fixed_offset_segments(zone, begin, stop):
            first_day = (segment_start + offset).date() - timedelta(days=1)
            last_day = (segment_end + offset).date()
            for day in _days(first_day, last_day):
                opens, closes = self._local_span(day)
                start, end = max(opens - offset, segment_start), min(closes - offset, segment_end)
                if start < end:
                    spans.append((start, end))
        return spans

    def _local_span(self, day: date) -> Span:
        """The window opening on `day`, as wall-clock times labelled UTC."""
        assert self.start is not None and self.end is not None
        opens = datetime.combine(day, self.start, tzinfo=UTC)
        closes = datetime.combine(day, self.end, tzinfo=UTC)
        if self.end <= self.start:
            closes += timedelta(days=1)
        return opens, closes


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("give an aware datetime: a naive one is no instant in time")


def _zone_infos(zones: Iterable[str]) -> list[ZoneInfo]:
    """ZoneInfo for each distinct name; ZoneInfoNotFoundError for a name zoneinfo lacks."""
    infos = [ZoneInfo(name) for name in dict.fromkeys(zones)]
    if not infos:
        raise ValueError("no time zones given: resolve them with recipient_zones()")
    return infos


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _fixed_offset_segments(
    zone: ZoneInfo, begin: datetime, stop: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """Split `begin`..`stop` (UTC) where `zone` changes its UTC offset (DST and the like)."""
    segments = []
    segment_start, offset = begin, _offset(zone, begin)
    probe = begin.replace(microsecond=0)
    while probe < stop:
        next_probe = probe + _OFFSET_PROBE_STEP
        if _offset(zone, next_probe) != offset:
            change = _offset_change(zone, probe, next_probe)
            if change > segment_start:
                segments.append((segment_start, min(change, stop), offset))
                segment_start = change
            offset = _offset(zone, change)
        probe = next_probe
    if segment_start < stop:
        segments.append((segment_start, stop, offset))
    return segments


def _offset_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first whole second in `before`..`after` with `after`'s offset, by bisection."""
    old = _offset(zone, before)
    seconds = int((after - before).total_seconds())
    low, high = 0, seconds
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, before + timedelta(seconds=middle)) == old:
            low = middle
        else:
            high = middle
    return before + timedelta(seconds=high)


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _intersect(first: list[Span], second: list[Span]) -> list[Span]:
    """Spans in both sorted, non-overlapping lists."""
    common: list[Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            common.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return common
