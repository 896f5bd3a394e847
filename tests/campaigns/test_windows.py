"""Quiet hours: send windows on each recipient's own clocks, and the zones they apply in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.windows import NEXT_OPEN_HORIZON, Window, recipient_zones

LONDON = "Europe/London"
NEW_YORK = "America/New_York"
DAYTIME = Window(time(9), time(20))
EVENING = Window(time(21), time(2))


def local(
    zone: str,
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """An instant by the clock in `zone`; `fold=1` is the second time round at fall-back."""
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def clock(zone: str, moment: datetime) -> tuple[datetime, int]:
    """What the clock in `zone` shows at `moment`, and which time round (fold) it is.

    Needed because == between zones is always False for an instant in a fall-back fold.
    """
    shown = moment.astimezone(ZoneInfo(zone))
    return shown.replace(tzinfo=None, fold=0), shown.fold


# --- is_open ------------------------------------------------------------------------------


def test_window_opens_at_start_and_closes_at_end() -> None:
    assert not DAYTIME.is_open([LONDON], local(LONDON, 2026, 1, 15, 8, 59, 59))
    assert DAYTIME.is_open([LONDON], local(LONDON, 2026, 1, 15, 9, 0))
    assert DAYTIME.is_open([LONDON], local(LONDON, 2026, 1, 15, 19, 59, 59))
    assert not DAYTIME.is_open([LONDON], local(LONDON, 2026, 1, 15, 20, 0))


def test_window_ending_before_it_starts_crosses_midnight() -> None:
    assert not EVENING.is_open([LONDON], local(LONDON, 2026, 1, 15, 20, 59))
    assert EVENING.is_open([LONDON], local(LONDON, 2026, 1, 15, 21, 0))
    assert EVENING.is_open([LONDON], local(LONDON, 2026, 1, 15, 23, 59))
    assert EVENING.is_open([LONDON], local(LONDON, 2026, 1, 16, 1, 59, 59))
    assert not EVENING.is_open([LONDON], local(LONDON, 2026, 1, 16, 2, 0))


def test_window_ending_at_midnight_is_open_until_midnight() -> None:
    window = Window(time(18), time(0))
    assert window.is_open([LONDON], local(LONDON, 2026, 1, 15, 23, 59, 59))
    assert not window.is_open([LONDON], local(LONDON, 2026, 1, 16, 0, 0))


def test_window_applies_on_the_recipients_clock_not_the_callers() -> None:
    # 14:30 UTC in January is 14:30 in London but 09:30 in New York.
    assert DAYTIME.is_open([NEW_YORK], utc(2026, 1, 15, 14, 30))
    assert not DAYTIME.is_open([NEW_YORK], utc(2026, 1, 15, 13, 59))


def test_several_zones_are_open_only_when_all_of_them_are() -> None:
    zones = [LONDON, NEW_YORK]
    assert not DAYTIME.is_open(zones, utc(2026, 1, 15, 13, 59))  # New York 08:59
    assert DAYTIME.is_open(zones, utc(2026, 1, 15, 14, 0))  # New York 09:00
    assert DAYTIME.is_open(zones, utc(2026, 1, 15, 19, 59))
    assert not DAYTIME.is_open(zones, utc(2026, 1, 15, 20, 0))  # London 20:00


def test_no_window_is_always_open() -> None:
    moment = utc(2026, 1, 15, 3, 0)
    assert Window().is_open([LONDON, "Pacific/Kiritimati"], moment)
    assert Window().next_open([LONDON], moment) == moment


@pytest.mark.parametrize(
    ("start", "end"),
    [(time(9), None), (None, time(20)), (time(9), time(9)), (time(9, tzinfo=UTC), time(20))],
)
def test_window_rejects_half_empty_zero_length_and_zoned_times(
    start: time | None, end: time | None
) -> None:
    with pytest.raises(ValueError):
        Window(start, end)


def test_window_rejects_naive_instants_and_no_zones() -> None:
    with pytest.raises(ValueError, match="aware"):
        DAYTIME.is_open([LONDON], datetime(2026, 1, 15, 12, 0))
    with pytest.raises(ValueError, match="no time zones"):
        DAYTIME.next_open([], utc(2026, 1, 15, 12, 0))


# --- next_open ----------------------------------------------------------------------------


def test_next_open_is_the_instant_itself_when_already_open() -> None:
    moment = local(LONDON, 2026, 1, 15, 12, 0)
    assert DAYTIME.next_open([LONDON], moment) is moment


def test_next_open_after_the_window_closed_is_the_next_mornings_start() -> None:
    opens = DAYTIME.next_open([LONDON], local(LONDON, 2026, 1, 15, 20, 0))
    assert opens == local(LONDON, 2026, 1, 16, 9, 0)
    assert opens is not None and opens.tzinfo is UTC


def test_next_open_before_the_window_is_the_same_days_start() -> None:
    assert DAYTIME.next_open([NEW_YORK], local(NEW_YORK, 2026, 1, 15, 6, 0)) == local(
        NEW_YORK, 2026, 1, 15, 9, 0
    )


def test_next_open_of_a_window_crossing_midnight() -> None:
    after = local(LONDON, 2026, 1, 15, 2, 0)
    assert EVENING.next_open([LONDON], after) == local(LONDON, 2026, 1, 15, 21, 0)


def test_next_open_of_several_zones_waits_for_the_last_to_open() -> None:
    after = utc(2026, 1, 15, 20, 0)  # London just closed, New York still open
    assert DAYTIME.next_open([LONDON, NEW_YORK], after) == utc(2026, 1, 16, 14, 0)


def test_next_open_looks_no_further_than_it_is_asked_to() -> None:
    after = local(LONDON, 2026, 1, 15, 20, 0)
    # The next opening is 13 hours away, at 09:00.
    assert DAYTIME.next_open([LONDON], after, within=timedelta(hours=12, minutes=59)) is None
    assert DAYTIME.next_open([LONDON], after, within=timedelta(hours=13, minutes=1)) == local(
        LONDON, 2026, 1, 16, 9, 0
    )


def test_zones_whose_windows_never_overlap_never_open() -> None:
    # Kiritimati (UTC+14) and Pago Pago (UTC-11) show the same clock time 25 hours apart.
    zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago"]
    assert Window(time(9), time(10)).next_open(zones, utc(2026, 1, 15, 0, 0)) is None
    # A longer window does overlap: 19:00-06:00 UTC in Kiritimati, 20:00-07:00 in Pago Pago.
    assert DAYTIME.next_open(zones, utc(2026, 1, 15, 7, 0)) == utc(2026, 1, 15, 20, 0)


# --- Daylight saving time (2026: US 8 March / 1 November, EU 29 March / 25 October) ----


def test_window_starting_inside_the_skipped_hour_opens_when_the_clock_jumps_new_york() -> None:
    # 02:00 EST becomes 03:00 EDT on 8 March: there is no 02:30 that day.
    window = Window(time(2, 30), time(4))
    opens = window.next_open([NEW_YORK], local(NEW_YORK, 2026, 3, 8, 0, 0))
    assert opens == local(NEW_YORK, 2026, 3, 8, 3, 0) == utc(2026, 3, 8, 7, 0)
    assert not window.is_open([NEW_YORK], opens - timedelta(microseconds=1))


def test_window_starting_inside_the_skipped_hour_opens_when_the_clock_jumps_london() -> None:
    # 01:00 GMT becomes 02:00 BST on 29 March.
    window = Window(time(1, 30), time(3))
    opens = window.next_open([LONDON], utc(2026, 3, 29, 0, 0))
    assert opens == utc(2026, 3, 29, 1, 0) == local(LONDON, 2026, 3, 29, 2, 0)


def test_window_ending_inside_the_skipped_hour_closes_when_the_clock_jumps() -> None:
    window = Window(time(21), time(2, 30))
    assert window.is_open([NEW_YORK], utc(2026, 3, 8, 6, 59))  # 01:59 EST
    assert not window.is_open([NEW_YORK], utc(2026, 3, 8, 7, 0))  # 03:00 EDT


def test_spring_forward_moves_the_opening_an_hour_earlier_in_utc() -> None:
    assert DAYTIME.next_open([NEW_YORK], utc(2026, 3, 7, 1, 0)) == utc(2026, 3, 7, 14, 0)
    assert DAYTIME.next_open([NEW_YORK], utc(2026, 3, 8, 1, 0)) == utc(2026, 3, 8, 13, 0)
    assert DAYTIME.next_open([LONDON], utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 8, 0)


def test_fall_back_moves_the_opening_an_hour_later_in_utc() -> None:
    assert DAYTIME.next_open([NEW_YORK], utc(2026, 10, 31, 1, 0)) == utc(2026, 10, 31, 13, 0)
    assert DAYTIME.next_open([NEW_YORK], utc(2026, 11, 1, 1, 0)) == utc(2026, 11, 1, 14, 0)
    assert DAYTIME.next_open([LONDON], utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 9, 0)


def test_window_starting_in_the_repeated_hour_opens_the_first_time_round() -> None:
    window = Window(time(1, 30), time(3))
    opens = window.next_open([NEW_YORK], utc(2026, 11, 1, 0, 0))
    assert opens == utc(2026, 11, 1, 5, 30)
    assert clock(NEW_YORK, opens) == (datetime(2026, 11, 1, 1, 30), 0)


def test_window_ending_in_the_repeated_hour_reopens_when_the_clock_turns_back() -> None:
    # Only the clock counts: 01:00-01:30 EST is inside 21:00-01:30 like 01:00-01:30 EDT was.
    window = Window(time(21), time(1, 30))
    assert not window.is_open([NEW_YORK], local(NEW_YORK, 2026, 11, 1, 1, 45, fold=0))
    assert window.is_open([NEW_YORK], local(NEW_YORK, 2026, 11, 1, 1, 15, fold=1))
    reopens = window.next_open([NEW_YORK], local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0))
    assert reopens == utc(2026, 11, 1, 6, 0)
    assert clock(NEW_YORK, reopens) == (datetime(2026, 11, 1, 1, 0), 1)


def test_zones_changing_clocks_on_different_dates() -> None:
    # 10 March: New York is on EDT (UTC-4), London still on GMT, so 09:00-20:00 in both
    # is 13:00-20:00 UTC. 30 March: London is on BST too, so it ends at 19:00 UTC.
    zones = [LONDON, NEW_YORK]
    assert DAYTIME.next_open(zones, utc(2026, 3, 10, 0, 0)) == utc(2026, 3, 10, 13, 0)
    assert DAYTIME.is_open(zones, utc(2026, 3, 10, 19, 30))
    assert not DAYTIME.is_open(zones, utc(2026, 3, 30, 19, 30))
    assert DAYTIME.next_open(zones, utc(2026, 3, 30, 19, 30)) == utc(2026, 3, 31, 13, 0)
    # 7 March: both on winter time, New York UTC-5.
    assert DAYTIME.next_open(zones, utc(2026, 3, 7, 0, 0)) == utc(2026, 3, 7, 14, 0)


PROPERTY_ZONES = [
    LONDON,
    NEW_YORK,
    "America/Los_Angeles",
    "America/St_Johns",  # UTC-3:30, DST
    "Australia/Sydney",  # southern DST
    "Australia/Lord_Howe",  # half-hour DST
    "Asia/Kolkata",
    "Asia/Kathmandu",  # UTC+5:45
    "Pacific/Chatham",  # UTC+12:45, DST
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]


@settings(max_examples=150, deadline=None)
@given(
    start_minute=st.integers(0, 24 * 60 - 1),
    length_minutes=st.integers(1, 24 * 60 - 1),
    zones=st.sets(st.sampled_from(PROPERTY_ZONES), min_size=1, max_size=3),
    after=st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2026, 12, 31),
        timezones=st.just(UTC),
    ),
    sampler=st.randoms(use_true_random=False),
)
def test_next_open_is_open_and_nothing_before_it_is(
    start_minute: int,
    length_minutes: int,
    zones: set[str],
    after: datetime,
    sampler: random.Random,
) -> None:
    end_minute = (start_minute + length_minutes) % (24 * 60)
    window = Window(
        time(*divmod(start_minute, 60)),
        time(*divmod(end_minute, 60)),
    )
    opens = window.next_open(zones, after)
    if opens is None:
        assert_never_open(window, zones, after, after + NEXT_OPEN_HORIZON, sampler)
        return
    assert opens >= after
    assert window.is_open(zones, opens)
    if window.is_open(zones, after):
        assert opens == after
    assert_never_open(window, zones, after, opens, sampler)


def assert_never_open(
    window: Window, zones: set[str], start: datetime, stop: datetime, sampler: random.Random
) -> None:
    """No instant in start..stop is open: the 30 minutes before stop, and 200 random ones."""
    moments = [stop - timedelta(minutes=m) for m in range(1, 31)]
    seconds = int((stop - start).total_seconds())
    if seconds:
        moments += [start + timedelta(seconds=sampler.randrange(seconds)) for _ in range(200)]
    for moment in moments:
        if moment >= start:
            assert not window.is_open(zones, moment), moment


# --- Which zones a recipient is in ----------------------------------------------------


def test_recipient_zones_prefer_the_contacts_own_zone() -> None:
    assert recipient_zones("+12125550100", own_zone="Asia/Tokyo", fallback=LONDON) == (
        "Asia/Tokyo",
    )


def test_recipient_zones_use_the_numbers_zones_when_the_own_zone_is_unset_or_unknown() -> None:
    for own_zone in ("", "Mars/Olympus_Mons", "Etc/Unknown"):
        assert recipient_zones("+12125550100", own_zone=own_zone, fallback=LONDON) == (NEW_YORK,)


def test_recipient_zones_fall_back_to_the_callers_zone_when_the_number_has_none() -> None:
    assert recipient_zones("+80012345678", own_zone="", fallback="Europe/Paris") == (
        "Europe/Paris",
    )
    assert recipient_zones("not a number", own_zone="", fallback="Europe/Paris") == (
        "Europe/Paris",
    )


def test_recipient_zones_are_sorted_so_equal_sets_group_together() -> None:
    zones = recipient_zones("+447911123456", own_zone="", fallback=LONDON)
    assert zones == tuple(sorted(zones)) and LONDON in zones
