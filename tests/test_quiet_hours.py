"""QUIET_HOURS: the window, the recipient's zones, and when a deferred text is due."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.errors import ConfigError
from shared.core.quiet_hours import (
    QuietHours,
    candidate_zones,
    parse_quiet_hours,
    when_to_send,
)

NIGHT = QuietHours(time(21), time(8))
CHICAGO = ("America/Chicago",)
NEW_YORK = ("America/New_York",)
LONDON = ("Europe/London",)
# Russia from west to east, with fixed offsets (+2, +3, +5, +10, +12): wider than a 10-hour day.
RUSSIA = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Asia/Yekaterinburg",
    "Asia/Vladivostok",
    "Asia/Kamchatka",
)
US_ZONES = (
    "America/Adak",
    "America/Anchorage",
    "America/Boise",
    "America/Chicago",
    "America/Denver",
    "America/Juneau",
    "America/Los_Angeles",
    "America/New_York",
    "America/North_Dakota/Center",
    "America/Phoenix",
    "Pacific/Honolulu",
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "shown", "quiet", "not_quiet"),
    [
        (
            "21:00-08:00",
            "21:00-08:00",
            ["21:00", "23:30", "00:00", "03:00", "07:59"],
            ["08:00", "12:00", "20:59"],
        ),
        (" 22:30-06:15 ", "22:30-06:15", ["22:30", "06:14"], ["06:15", "22:29"]),
        ("13:00-14:00", "13:00-14:00", ["13:00", "13:59"], ["12:59", "14:00", "23:00", "03:00"]),
        ("00:00-06:00", "00:00-06:00", ["00:00", "05:59"], ["06:00", "23:59"]),
        ("22:00-00:00", "22:00-00:00", ["22:00", "23:59"], ["00:00", "21:59"]),
    ],
)
def test_a_window_is_quiet_from_its_start_until_its_end(text, shown, quiet, not_quiet):
    window = parse_quiet_hours(text)
    assert str(window) == shown
    assert [window.covers(time.fromisoformat(t)) for t in quiet] == [True] * len(quiet)
    assert [window.covers(time.fromisoformat(t)) for t in not_quiet] == [False] * len(not_quiet)


@pytest.mark.parametrize("text", ["off", "OFF", " off ", "Off\n"])
def test_off_in_any_case_means_no_quiet_hours(text):
    assert parse_quiet_hours(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "25:00-08:00",
        "24:00-08:00",
        "21:60-08:00",
        "21-08",
        "9:00-17:00",
        "21:00",
        "21:00-08:00-09:00",
        "21:00 08:00",
        "21:00–08:00",
        "",
        "night",
        "none",
    ],
)
def test_a_malformed_window_names_the_variable_and_an_example(text):
    with pytest.raises(
        ConfigError, match=r"^QUIET_HOURS must be 'off' or .* HH:MM-HH:MM"
    ) as caught:
        parse_quiet_hours(text)
    assert "such as 21:00-08:00" in str(caught.value)
    assert str(caught.value).endswith(f"got {text!r}")


@pytest.mark.parametrize("text", ["21:00-21:00", "00:00-00:00"])
def test_a_window_that_starts_where_it_ends_is_refused(text):
    with pytest.raises(ConfigError, match=r"^QUIET_HOURS must start and end at different times"):
        parse_quiet_hours(text)


def test_the_error_names_the_variable_it_was_read_from():
    with pytest.raises(ConfigError, match=r"^QUIET_HOURS_EU must be 'off'"):
        parse_quiet_hours("late", variable="QUIET_HOURS_EU")


@pytest.mark.parametrize(
    ("e164", "address_country", "zones"),
    [
        # One zone: a London landline, a US number by its area code.
        ("+442079460000", None, LONDON),
        ("+442079460000", "GB", LONDON),
        ("+13125550100", None, CHICAGO),
        ("+12125550100", None, NEW_YORK),
        ("+13125550100", "us", CHICAGO),
        # Area code 907 (Alaska) spans two zones.
        ("+19072345678", None, ("America/Adak", "America/Anchorage")),
        # Toll-free: phonenumbers knows only every +1 zone (Guam to Newfoundland); the US's instead.
        ("+18002345678", None, US_ZONES),
        # An address abroad adds that country's zones.
        ("+13125550100", "DE", ("America/Chicago", "Europe/Berlin")),
        ("+12125550100", "PR", ("America/New_York", "America/Puerto_Rico")),
        ("+442079460000", "FR", ("Europe/London", "Europe/Paris")),
        # An address country phonenumbers does not know adds nothing.
        ("+13125550100", "XX", CHICAGO),
        # +800 (international freephone) has no place: the address's, or UTC.
        ("+80012345678", "de", ("Europe/Berlin",)),
        ("+80012345678", None, ("UTC",)),
    ],
)
def test_the_candidate_zones_of_a_recipient(e164, address_country, zones):
    assert candidate_zones(e164, address_country) == zones


@pytest.mark.parametrize(
    ("now", "window", "zones", "due_at"),
    [
        # Chicago (UTC-6 in November): 23:30, 03:00, 07:59:59 and 12:00 local.
        ("2026-11-27T05:30:00", NIGHT, CHICAGO, "2026-11-27T14:00:00"),
        ("2026-11-27T09:00:00", NIGHT, CHICAGO, "2026-11-27T14:00:00"),
        ("2026-11-27T13:59:59", NIGHT, CHICAGO, "2026-11-27T14:00:00"),
        ("2026-11-27T14:00:00", NIGHT, CHICAGO, None),
        ("2026-11-27T18:00:00", NIGHT, CHICAGO, None),
        ("2026-11-27T02:59:59.999999", NIGHT, CHICAGO, None),
        ("2026-11-27T03:00:00", NIGHT, CHICAGO, "2026-11-27T14:00:00"),
        # New York, clocks go back at 02:00 EDT on 2026-11-01 (06:00Z): 21:30 EDT the evening
        # before, 01:30 EDT and 01:30 EST are all due at 08:00 EST.
        ("2026-11-01T01:30:00", NIGHT, NEW_YORK, "2026-11-01T13:00:00"),
        ("2026-11-01T05:30:00", NIGHT, NEW_YORK, "2026-11-01T13:00:00"),
        ("2026-11-01T06:30:00", NIGHT, NEW_YORK, "2026-11-01T13:00:00"),
        # New York, clocks go forward at 02:00 EST on 2026-03-08 (07:00Z): 21:30 EST the evening
        # before, 01:30 EST and 03:30 EDT are all due at 08:00 EDT.
        ("2026-03-08T02:30:00", NIGHT, NEW_YORK, "2026-03-08T12:00:00"),
        ("2026-03-08T06:30:00", NIGHT, NEW_YORK, "2026-03-08T12:00:00"),
        ("2026-03-08T07:30:00", NIGHT, NEW_YORK, "2026-03-08T12:00:00"),
        # A quiet end the clock skips (02:30 on 2026-03-08) is passed at 03:00 EDT.
        ("2026-03-08T06:00:00", QuietHours(time(21), time(2, 30)), NEW_YORK, "2026-03-08T07:00:00"),
        # A quiet end the clock reads twice (01:30 on 2026-11-01): 01:10 EDT is due at 01:30 EDT,
        # and 01:10 EST is quiet again, due at 01:30 EST.
        ("2026-11-01T05:10:00", QuietHours(time(21), time(1, 30)), NEW_YORK, "2026-11-01T05:30:00"),
        ("2026-11-01T06:10:00", QuietHours(time(21), time(1, 30)), NEW_YORK, "2026-11-01T06:30:00"),
        # A quiet start in the repeated hour: at 01:45 EDT the clock is about to read 01:00 EST,
        # before the window starts.
        ("2026-11-01T05:45:00", QuietHours(time(1, 30), time(8)), NEW_YORK, "2026-11-01T06:00:00"),
        # A window that does not cross midnight: a London lunch hour, in summer (BST) and winter.
        ("2026-07-01T12:15:00", QuietHours(time(13), time(14)), LONDON, "2026-07-01T13:00:00"),
        ("2026-12-01T13:30:00", QuietHours(time(13), time(14)), LONDON, "2026-12-01T14:00:00"),
        ("2026-07-01T11:59:00", QuietHours(time(13), time(14)), LONDON, None),
        # Several zones: due when the last one wakes up (Los Angeles, 08:00 PST = 16:00Z)...
        (
            "2026-11-27T09:12:00",
            NIGHT,
            ("America/Chicago", "America/Los_Angeles", "America/New_York"),
            "2026-11-27T16:00:00",
        ),
        # ...and not while one of them is asleep: London 13:00 but Tokyo 22:00, so the next
        # morning in London (08:00Z) when it is 17:00 in Tokyo.
        ("2026-11-27T13:00:00", NIGHT, ("Asia/Tokyo", "Europe/London"), "2026-11-28T08:00:00"),
        # Russia fits in 21:00-08:00: from 06:00Z (08:00 in Kaliningrad) to 09:00Z (21:00 in
        # Kamchatka).
        ("2026-11-27T22:00:00", NIGHT, RUSSIA, "2026-11-28T06:00:00"),
        ("2026-11-28T08:59:00", NIGHT, RUSSIA, None),
        ("2026-11-28T09:00:00", NIGHT, RUSSIA, "2026-11-29T06:00:00"),
    ],
)
def test_the_text_is_due_when_every_zone_is_out_of_quiet_hours(now, window, zones, due_at):
    deferral = when_to_send(utc(now), window, zones)
    if due_at is None:
        assert deferral is None
    else:
        assert deferral is not None
        assert (deferral.due_at, deferral.zones, deferral.partial) == (utc(due_at), zones, False)


def test_no_window_sends_at_any_hour():
    assert when_to_send(utc("2026-11-27T09:12:00"), None, CHICAGO) is None


def test_the_reason_names_the_local_time_of_each_zone_that_is_quiet_now():
    one = when_to_send(utc("2026-11-27T09:12:00"), NIGHT, CHICAGO)
    assert one is not None
    assert one.reason == "03:12 in America/Chicago; due 2026-11-27T14:00:00Z"
    several = when_to_send(
        utc("2026-11-27T13:30:00"),
        NIGHT,
        ("America/Chicago", "America/Los_Angeles", "America/New_York"),
    )
    assert several is not None
    assert several.reason == (
        "07:30 in America/Chicago, 05:30 in America/Los_Angeles; due 2026-11-27T16:00:00Z"
    )


def test_when_no_moment_suits_every_zone_the_most_zones_win():
    # Awake 10:00-20:00: Kaliningrad from 08:00Z, Kamchatka until 08:00Z, so never both. Four of
    # five are awake from 07:00Z (Moscow wakes, Kamchatka 19:00) to 08:00Z, and from 08:00Z
    # (Kaliningrad wakes, Kamchatka asleep) to 10:00Z: the first of these.
    deferral = when_to_send(utc("2026-11-27T22:00:00"), QuietHours(time(20), time(10)), RUSSIA)
    assert deferral is not None
    assert (deferral.due_at, deferral.partial) == (utc("2026-11-28T07:00:00"), True)
    assert deferral.reason == (
        "00:00 in Europe/Kaliningrad, 01:00 in Europe/Moscow, 03:00 in Asia/Yekaterinburg, "
        "08:00 in Asia/Vladivostok; due 2026-11-28T07:00:00Z; no moment in the next 24 hours "
        "is outside quiet hours in every zone, still inside them then: 09:00 in Europe/Kaliningrad"
    )


def test_when_now_already_suits_the_most_zones_it_is_due_now():
    now = utc("2026-11-28T07:30:00")
    deferral = when_to_send(now, QuietHours(time(20), time(10)), RUSSIA)
    assert deferral is not None
    assert (deferral.due_at, deferral.partial) == (now, True)


def test_now_must_be_aware_and_zones_given():
    with pytest.raises(ValueError, match="aware"):
        when_to_send(datetime(2026, 11, 27, 9), NIGHT, CHICAGO)
    with pytest.raises(ValueError, match="zone"):
        when_to_send(utc("2026-11-27T09:00:00"), NIGHT, ())


# Clock changes, where a window boundary may be skipped or read twice: New York (March,
# November), London and Troll (2 hours) in March, London in October, Lord Howe (30 minutes),
# Samoa (2011-12-30 skipped whole).
CLOCK_CHANGES = [
    utc("2026-03-08T07:00:00"),
    utc("2026-11-01T06:00:00"),
    utc("2026-03-29T01:00:00"),
    utc("2026-10-25T01:00:00"),
    utc("2026-04-04T15:00:00"),
    utc("2011-12-30T10:00:00"),
]
minutes_of_day = st.one_of(
    st.sampled_from([0, 60, 90, 120, 150, 180, 480, 1260]), st.integers(0, 24 * 60 - 1)
)
windows = (
    st.tuples(minutes_of_day, minutes_of_day)
    .filter(lambda ends: ends[0] != ends[1])
    .map(lambda ends: QuietHours(*(time(minute // 60, minute % 60) for minute in ends)))
)
nows = st.one_of(
    st.datetimes(datetime(1980, 1, 1), datetime(2099, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda change, seconds: change + timedelta(seconds=seconds),
        st.sampled_from(CLOCK_CHANGES),
        st.integers(-36 * 3600, 36 * 3600),
    ),
)
zone_sets = st.lists(
    st.one_of(
        st.sampled_from(
            ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Antarctica/Troll"]
        ),
        st.sampled_from(["Pacific/Apia", "Asia/Kamchatka", "America/St_Johns"]),
        st.timezone_keys(allow_prefix=False),
    ),
    min_size=1,
    max_size=4,
    unique=True,
)


def awake(window: QuietHours, zones: list[str], moment: datetime) -> int:
    """How many of `zones` read a time outside `window` at `moment`."""
    return sum(not window.covers(moment.astimezone(ZoneInfo(z)).time()) for z in zones)


@settings(max_examples=300, deadline=None)
@given(now=nows, window=windows, zones=zone_sets)
def test_the_due_time_is_the_first_moment_the_most_zones_are_awake(now, window, zones):
    deferral = when_to_send(now, window, zones)
    if deferral is None:
        assert awake(window, zones, now) == len(zones)
        return
    assert awake(window, zones, now) < len(zones)
    assert deferral.due_at >= now
    best = awake(window, zones, deferral.due_at)
    assert (best == len(zones)) is not deferral.partial
    assert deferral.due_at == now or awake(window, zones, now) < best
    # Boundaries fall on whole minutes (whole-minute offsets), so checking every whole minute
    # of the next day shows that no earlier moment does as well and no later one does better.
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= now + timedelta(hours=24):
        count = awake(window, zones, minute)
        assert count < best if minute < deferral.due_at else count <= best
        minute += timedelta(minutes=1)
