"""QUIET_HOURS: the window, the recipient's zones, and when a deferred text is due."""

from datetime import time

import pytest

from shared.core.errors import ConfigError
from shared.core.quiet_hours import candidate_zones, parse_quiet_hours

CHICAGO = ("America/Chicago",)
NEW_YORK = ("America/New_York",)
LONDON = ("Europe/London",)
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
