"""QUIET_HOURS: the window, the recipient's zones, and when a deferred text is due."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.tzdata import TIMEZONE_DATA

from shared.core.errors import ConfigError
from shared.core.places import AREA_CODES, NAMES, ZONES
from shared.core.policy import QuietHours, parse_quiet_hours
from shared.core.quiet_hours import candidate_zones, when_to_send

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
        ("02:26-02:57:20", "02:26-02:57:20", ["02:26", "02:57:19"], ["02:57:20", "02:25:59"]),
        ("23:59:30-00:00:10", "23:59:30-00:00:10", ["23:59:30", "00:00:09"], ["00:00:10"]),
        ("21:00:00-08:00:00", "21:00-08:00", ["21:00"], ["08:00"]),
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
        "21:00:60-08:00",
        "21:00:5-08:00",
        "21:00-08:00:",
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


# Two moments of 2027, in winter and in summer: a zone's clock is its UTC offset at both.
CLOCK_DATES = (utc("2027-01-15T12:00:00"), utc("2027-07-15T12:00:00"))


def clocks(zones) -> set[tuple[timedelta | None, ...]]:
    """The clocks `zones` keep, by their UTC offsets in winter and summer: zones that keep the
    same clock (America/Toronto and America/Iqaluit) read the same."""
    return {tuple(d.astimezone(ZoneInfo(z)).utcoffset() for d in CLOCK_DATES) for z in zones}


# The multi-zone area codes of the US and Canada, with a number whose exchange phonenumbers does
# not know (it answers with a default zone), and the zones the area code really spans: written
# from geography, official time (49 CFR 71; provincial and territorial law).
MULTI_ZONE_AREA_CODES = [
    # Yukon (MST all year), Northwest Territories (Mountain), Nunavut: Cambridge Bay (Mountain),
    # Rankin Inlet (Central), Iqaluit (Eastern), Coral Harbour (EST all year).
    (
        "+18672221234",
        (
            "America/Whitehorse",
            "America/Inuvik",
            "America/Cambridge_Bay",
            "America/Rankin_Inlet",
            "America/Iqaluit",
            "America/Coral_Harbour",
        ),
    ),
    # Idaho: Boise (Mountain), the panhandle (Pacific).
    ("+12085551234", ("America/Boise", "America/Los_Angeles")),
    # Oregon outside Portland: Pacific, and Malheur County (Mountain).
    ("+15412221234", ("America/Los_Angeles", "America/Boise")),
    # El Paso and Hudspeth counties (Mountain), Culberson County (Central).
    ("+19152221234", ("America/Denver", "America/Chicago")),
    # The Florida panhandle: Tallahassee (Eastern), Pensacola (Central).
    ("+18502221234", ("America/New_York", "America/Chicago")),
    # Western Kentucky: Bowling Green (Central), Elizabethtown (Eastern).
    ("+12702221234", ("America/Chicago", "America/Kentucky/Louisville")),
    # East Tennessee: Chattanooga (Eastern), Marion and Sequatchie counties (Central).
    ("+14232221234", ("America/New_York", "America/Chicago")),
    # North Dakota: Fargo (Central), Dickinson (Mountain).
    ("+17012401234", ("America/Chicago", "America/Denver")),
    # South Dakota: Sioux Falls (Central), Rapid City (Mountain).
    ("+16052221234", ("America/Chicago", "America/Denver")),
    # Western Nebraska: Kearney (Central), Scottsbluff (Mountain).
    ("+13082221234", ("America/Chicago", "America/Denver")),
    # Northern and western Kansas: Topeka (Central), Goodland (Mountain).
    ("+17852221234", ("America/Chicago", "America/Denver")),
    # Southern and western Kansas: Dodge City (Central), Syracuse (Mountain).
    ("+16202221234", ("America/Chicago", "America/Denver")),
    # Southern Indiana: Bloomington (Eastern), Evansville (Central).
    ("+18122221234", ("America/Indiana/Indianapolis", "America/Chicago")),
    # The Upper Peninsula: Marquette (Eastern), Menominee (Central).
    ("+19062221234", ("America/Detroit", "America/Menominee")),
    # Northwestern Ontario: Thunder Bay, Kenora (Central), Atikokan (EST all year).
    ("+18072221234", ("America/Toronto", "America/Winnipeg", "America/Atikokan")),
    # Eastern Quebec: Quebec City, the Magdalen Islands (Atlantic), Blanc-Sablon (AST all year).
    ("+14182221234", ("America/Toronto", "America/Halifax", "America/Blanc-Sablon")),
    # Saskatchewan (CST all year), and Lloydminster on Alberta's time.
    ("+13062221234", ("America/Regina", "America/Edmonton")),
    # British Columbia outside Vancouver: Pacific, Cranbrook (Mountain), Dawson Creek (MST).
    ("+12502221234", ("America/Vancouver", "America/Edmonton", "America/Dawson_Creek")),
    # Newfoundland, and Labrador (Atlantic).
    ("+17092221234", ("America/St_Johns", "America/Goose_Bay")),
    # Alaska, and Adak (Hawaii-Aleutian).
    ("+19072221234", ("America/Anchorage", "America/Adak")),
    # Northern Arizona (MST all year), and the Navajo Nation (Mountain with DST).
    ("+19282221234", ("America/Phoenix", "America/Denver")),
    # Nevada outside Las Vegas (Pacific), and West Wendover (Mountain).
    ("+17752221234", ("America/Los_Angeles", "America/Denver")),
    # Middle Tennessee outside Nashville, listed in the issue, keeps one clock: its 28
    # counties, Cumberland and Fentress on the Plateau included, are all Central.
    ("+19312221234", ("America/Chicago",)),
]


@pytest.mark.parametrize(("e164", "spans"), MULTI_ZONE_AREA_CODES)
def test_an_area_code_that_spans_time_zones_is_judged_in_all_of_them(e164, spans):
    assert clocks(candidate_zones(e164, None)) == clocks(spans)


def test_an_iqaluit_customer_is_not_texted_at_half_past_ten_at_night():
    # 22:30 in Iqaluit (EST) is 20:30 in Whitehorse, where phonenumbers' default zone is.
    zones = candidate_zones("+18672221234", None)
    deferral = when_to_send(utc("2027-01-16T03:30:00"), NIGHT, zones)
    assert deferral is not None
    assert "22:30 in America/Iqaluit" in deferral.reason
    # 08:00 in Whitehorse (15:00Z), the last of the territories to wake.
    assert deferral.due_at == utc("2027-01-16T15:00:00")


def test_an_exchange_phonenumbers_knows_is_judged_in_every_zone_of_its_area_code_too():
    # Whitehorse's exchange, which phonenumbers puts in Vancouver: an hour behind Yukon's clock
    # in winter, so 21:30 there would read 20:30. Iqaluit's own exchange (Toronto's clock).
    for e164 in ("+18676671234", "+18679791234"):
        assert clocks(candidate_zones(e164, None)) == clocks(MULTI_ZONE_AREA_CODES[0][1])


@pytest.mark.parametrize(
    ("e164", "country", "state", "zones"),
    [
        # A New York number with a California address: both.
        ("+12125550100", "US", "CA", ("America/Los_Angeles", "America/New_York")),
        ("+12125550100", "US", "California", ("America/Los_Angeles", "America/New_York")),
        ("+12125550100", "us", " california ", ("America/Los_Angeles", "America/New_York")),
        ("+12125550100", "US", "US-CA", ("America/Los_Angeles", "America/New_York")),
        # No country on the address: the state is read in the number's country.
        ("+12125550100", None, "CA", ("America/Los_Angeles", "America/New_York")),
        # A state that spans two zones adds both.
        ("+12125550100", "US", "TX", ("America/Chicago", "America/Denver", "America/New_York")),
        # The number's own state adds nothing.
        ("+12125550100", "US", "NY", NEW_YORK),
        # A Canadian province, abroad: its zones, not all of Canada's.
        (
            "+12125550100",
            "CA",
            "ON",
            ("America/Atikokan", "America/New_York", "America/Toronto", "America/Winnipeg"),
        ),
        (
            "+12125550100",
            "CA",
            "Québec",
            ("America/Blanc-Sablon", "America/Halifax", "America/New_York", "America/Toronto"),
        ),
        # Australia: Western Australia is not Washington.
        ("+12125550100", "AU", "WA", ("America/New_York", "Australia/Perth")),
        ("+61298765432", "AU", "Western Australia", ("Australia/Perth", "Australia/Sydney")),
        # Brazil: Acre (UTC-5) for a São Paulo number.
        ("+5511987654321", "BR", "AC", ("America/Rio_Branco", "America/Sao_Paulo")),
        ("+5511987654321", "BR", "São Paulo", ("America/Sao_Paulo",)),
        # Mexico: Baja California for a Mexico City number, however it is written.
        ("+525512345678", "MX", "BCN", ("America/Mexico_City", "America/Tijuana")),
        ("+525512345678", "MX", "Baja California", ("America/Mexico_City", "America/Tijuana")),
        (
            "+525512345678",
            "MX",
            "Nuevo León",
            ("America/Matamoros", "America/Mexico_City", "America/Monterrey"),
        ),
        (
            "+525512345678",
            "MX",
            "N.L.",
            ("America/Matamoros", "America/Mexico_City", "America/Monterrey"),
        ),
        # A state nobody knows: the country's zones when it is another country's, else nothing.
        ("+12125550100", "US", "Calif.", NEW_YORK),
        ("+442079460000", "FR", "Île-de-France", ("Europe/London", "Europe/Paris")),
        ("+12125550100", "US", "", NEW_YORK),
    ],
)
def test_the_address_state_counts_too(e164, country, state, zones):
    assert candidate_zones(e164, country, state) == zones


def test_a_new_york_number_with_a_california_address_waits_for_los_angeles_morning():
    # 07:03 in Los Angeles (PST) is 10:03 in New York.
    now = utc("2026-11-27T15:03:00")
    zones = candidate_zones("+12125550100", "US", "CA")
    assert when_to_send(now, NIGHT, candidate_zones("+12125550100", "US")) is None
    deferral = when_to_send(now, NIGHT, zones)
    assert deferral is not None
    assert deferral.reason == "07:03 in America/Los_Angeles; due 2026-11-27T16:00:00Z"


def test_every_state_zone_is_a_zone_and_every_name_a_state():
    for country, states in ZONES.items():
        assert set(NAMES[country]) == set(states), country
        for zones in states.values():
            assert [ZoneInfo(zone).key for zone in zones] == list(zones)
            # One zone per clock: two of the same clock would only lengthen the reason.
            assert len(clocks(zones)) == len(zones), zones


def test_every_area_code_phonenumbers_knows_to_span_zones_is_in_the_table():
    # phonenumbers lists zones by prefix; where one area code's prefixes keep several clocks, the
    # table must have it (the table adds those phonenumbers misses, such as 915's Central time).
    by_area_code: dict[str, set[str]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4:
            by_area_code.setdefault(prefix[1:4], set()).update(zones)
    spanning = {code for code, zones in by_area_code.items() if len(clocks(zones)) > 1}
    assert spanning
    assert spanning <= {code for codes in AREA_CODES for code in codes.split()}


def test_every_area_code_of_the_table_spans_zones_that_exist():
    for codes, zones in AREA_CODES.items():
        assert [ZoneInfo(zone).key for zone in zones] == list(zones)
        assert len(clocks(zones)) == len(zones) > 1, codes
        for code in codes.split():
            number = phonenumbers.parse(f"+1{code}2345678")
            assert phonenumbers.region_code_for_number(number) in {"US", "CA"}, code


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
