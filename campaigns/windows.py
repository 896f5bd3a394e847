"""Quiet hours: when a campaign may message a recipient, by the recipient's own clocks.

Pure functions, no database. The send engine resolves each recipient's zones once
(`recipient_zones`), groups recipients by zone set, and asks the campaign's `Window`
when that set is open (`is_open`) or will next be (`next_open`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache, reduce
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

#: How far ahead `next_open` looks; past this a zone set counts as never open.
NEXT_OPEN_HORIZON = timedelta(days=8)

_UNKNOWN_ZONE = "Etc/Unknown"
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# Offsets are sampled this often to find DST transitions; no zone changes offset twice
# within an hour.
_OFFSET_PROBE_STEP = timedelta(hours=1)

Span = tuple[datetime, datetime]


# --- Which zones a recipient is in -------------------------------------------------------


def recipient_zones(phone: str, *, own_zone: str, fallback: str) -> tuple[str, ...]:
    """The zones a recipient's window applies in: its own, else its number's, else `fallback`.

    Sorted, so it can key the groups the engine computes `next_open` for. A zone zoneinfo
    does not know (a typo, "Etc/Unknown") counts as unset.
    """
    if own_zone and _is_known_zone(own_zone):
        return (own_zone,)
    zones = sorted({zone for zone in zones_for_phone(phone) if _is_known_zone(zone)})
    return tuple(zones) or (fallback,)


def zones_for_phone(e164: str) -> tuple[str, ...]:
    """What `contacts.phones.time_zones_for` says for a valid E.164 number, without parsing it.

    libphonenumber's answer depends on the number's type (a UK or Russian mobile gets every
    zone of its country, a landline the zones of its area), and the type on a few leading
    digits only. So answers are cached per (deciding leading digits, length). Empty when
    libphonenumber cannot say, and for text that is not "+" and digits with a known
    country code.
    """
    digits = e164[1:]
    if not (e164.startswith("+") and digits.isascii() and digits.isdigit()):
        return ()
    country_code = _country_code(digits)
    if country_code is None or len(digits) <= len(country_code):
        return ()
    floor, depths = _deciding_depths(country_code)
    national = digits[len(country_code) :]
    depth = depths.get(national[:_START_DIGITS], floor)
    return _zones_for_prefix(digits[: len(country_code) + depth], len(digits))


def _country_code(digits: str) -> str | None:
    # Country codes are prefix-free, so the first match is the only one.
    for length in (1, 2, 3):
        if digits[:length] in _COUNTRY_CODES:
            return digits[:length]
    return None


@lru_cache(maxsize=1 << 16)
def _zones_for_prefix(prefix: str, length: int) -> tuple[str, ...]:
    # Every number with these leading digits and this length gets the same answer, so ask
    # libphonenumber about the one padded with zeros.
    country_code = _country_code(prefix) or ""
    national = prefix[len(country_code) :].ljust(length - len(country_code), "0")
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(national))
    leading_zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
    if leading_zeros:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = leading_zeros
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(zone for zone in zones if zone != _UNKNOWN_ZONE)


# How deep libphonenumber reads a number is worked out per first three national digits:
# Jamaica's "876 6060" ranges must not make every +1 number read seven digits deep.
_START_DIGITS = 3
_DIGITS = frozenset("0123456789")
# The digit patterns libphonenumber matches a national number against to tell its type.
_NUMBER_TYPE_DESCS = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


@cache
def _deciding_depths(country_code: str) -> tuple[int, dict[str, int]]:
    """How many national digits decide the zones: by first three digits, and otherwise."""
    floor, depths = _START_DIGITS, dict[str, int]()
    for starts, depth in _digit_readers(country_code):
        if starts is None:
            floor = max(floor, depth)
        for start in starts or ():
            depths[start] = max(depths.get(start, depth), depth)
    return floor, {start: max(depth, floor) for start, depth in depths.items()}


def _digit_readers(country_code: str) -> Iterator[tuple[set[str] | None, int]]:
    """Everything libphonenumber reads a number's digits with, for its zones.

    Each as: the first three national digits it can see (None: any), and how many
    national digits decide what it says.
    """
    for prefix in TIMEZONE_DATA:
        national = prefix[len(country_code) :]
        if prefix.startswith(country_code) and len(national) > _START_DIGITS:
            yield {national[:_START_DIGITS]}, len(national)
    code = int(country_code)
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            continue
        for name in _NUMBER_TYPE_DESCS:
            desc = getattr(metadata, name)
            if desc is not None and desc.national_number_pattern:
                for branch in _alternatives(sre_parser.parse(desc.national_number_pattern)):
                    yield _starts(branch), _pattern_depth(branch)
        if metadata.leading_digits:
            # Matched at the start only (re.match), so its longest match is what it reads.
            for branch in _alternatives(sre_parser.parse(metadata.leading_digits)):
                yield _starts(branch), _max_width(branch)


def _alternatives(items: Any) -> list[list[Any]]:
    """The top-level alternatives of a parsed pattern."""
    items = list(items)
    if len(items) == 1:
        op, arg = items[0]
        if op is sre_constants.BRANCH:
            return [alternative for branch in arg[1] for alternative in _alternatives(branch)]
        if op is sre_constants.SUBPATTERN:
            return _alternatives(arg[3])
    return [items]


def _starts(items: list[Any]) -> set[str] | None:
    """The first three characters of the pattern's matches; None when it cannot tell."""
    prefixes = _prefixes(items, _START_DIGITS)
    return None if prefixes is None else {p for p in prefixes if len(p) == _START_DIGITS}


def _prefixes(items: list[Any], length: int) -> set[str] | None:
    """The first `length` characters (or all, when shorter) of each match of the items."""
    if length == 0 or not items:
        return {""}
    heads = _item_prefixes(items[0], length)
    if heads is None:
        return None
    prefixes: set[str] = set()
    for head in heads:
        tails = {""} if len(head) == length else _prefixes(items[1:], length - len(head))
        if tails is None:
            return None
        prefixes.update(head + tail for tail in tails)
    return prefixes


def _item_prefixes(item: tuple[Any, Any], length: int) -> set[str] | None:
    op, arg = item
    if op is sre_constants.LITERAL:
        return {chr(arg)}
    if op is sre_constants.IN:
        return _digit_set(arg)
    if op is sre_constants.SUBPATTERN:
        return _prefixes(list(arg[3]), length)
    if op is sre_constants.BRANCH:
        alternatives = [_prefixes(list(branch), length) for branch in arg[1]]
        return None if None in alternatives else set().union(*alternatives)  # type: ignore[arg-type]
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
        # Repeating more than `length` times adds no new first `length` characters.
        low, high, body = arg
        counts = range(min(low, length), min(high, length) + 1)
        repeats = [_prefixes(list(body) * count, length) for count in counts]
        return None if None in repeats else set().union(*repeats)  # type: ignore[arg-type]
    return None


def _digit_set(members: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, value in members:
        if op is sre_constants.LITERAL:
            chars.add(chr(value))
        elif op is sre_constants.RANGE:
            chars.update(chr(code) for code in range(value[0], value[1] + 1))
        elif op is sre_constants.CATEGORY and value is sre_constants.CATEGORY_DIGIT:
            chars.update(_DIGITS)
        else:
            return None
    return chars & _DIGITS


def _pattern_depth(items: Any) -> int:
    """How many leading characters decide a full match of the parsed pattern, given the length.

    Number patterns read "these prefixes, then any N digits": only the part before that
    trailing run of any-digits looks at the digits themselves.
    """
    items = list(items)
    while items and _is_any_digits(items[-1]):
        items.pop()
    if not items:
        return 0
    *head, (op, arg) = items
    if op is sre_constants.SUBPATTERN:
        last = _pattern_depth(arg[3])
    elif op is sre_constants.BRANCH:
        last = max(_pattern_depth(branch) for branch in arg[1])
    else:
        last = _max_width([(op, arg)])
    return _max_width(head) + last


def _is_any_digits(item: tuple[Any, Any]) -> bool:
    op, arg = item
    if op is sre_constants.IN:
        return _digit_set(arg) == _DIGITS
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
        return all(map(_is_any_digits, arg[2]))
    if op is sre_constants.SUBPATTERN:
        return all(map(_is_any_digits, arg[3]))
    if op is sre_constants.BRANCH:
        return all(all(map(_is_any_digits, branch)) for branch in arg[1])
    return False


def _max_width(items: list[Any]) -> int:
    # An unbounded width (MAXREPEAT) makes the key the whole number: slower, still right.
    width: int = sre_parser.SubPattern(sre_parser.State(), items).getwidth()[1]
    return width


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
