"""Quiet hours: whether a failed payment may be texted now, or the UTC moment it becomes due."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import phonenumbers

# 1.0-1.5 ms on top of phonenumbers itself (which shared.core.phone imports anyway), and the first
# failed payment of an instance needs it: a lazy import would only move that millisecond.
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number
from phonenumbers.tzdata import TIMEZONE_DATA

from shared.core.places import area_code_zones, zones_of
from shared.core.policy import QuietHours

# A number and an address that say nothing about a place (a +800 freephone or a satellite number,
# no address country): the window is applied in UTC rather than not at all.
UNKNOWN_PLACE_ZONE = "UTC"
# The North American Numbering Plan: the US, Canada and 23 others share calling code 1.
NANP = "1"
# The window repeats daily, so a day ahead holds every kind of moment there is to find.
HORIZON = timedelta(hours=24)

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Deferral:
    """Hold the text until `due_at` (UTC); `reason` is for operators and names local times.

    `partial`: no moment in the next 24 hours is outside the window in every zone, so `due_at` is
    the earliest one outside it in the most zones (and may be now).
    """

    due_at: datetime
    zones: tuple[str, ...]
    reason: str
    partial: bool


def candidate_zones(
    e164: str, address_country: str | None, address_state: str | None = None
) -> tuple[str, ...]:
    """The IANA zones the recipient may be in, sorted; never empty.

    The number's own zones: a US or Canadian number's area code's, every one of them when it spans
    several (867: Yukon, Northwest Territories and Nunavut), else phonenumbers' (by country, area
    code or exchange). When phonenumbers knows no zone for the number, or only those of its whole
    calling code (a US toll-free number gets every +1 zone from Guam to Newfoundland), every zone
    of the number's country instead. The address adds the zones of its state or province (its
    code or name, read in the address country, else the number's: `shared.core.places`), or,
    when it names no state known there and another country (ISO 3166-1 alpha-2) than the
    number's, every zone of that country. With no place at all, `UNKNOWN_PLACE_ZONE`. `e164` must
    be a number `shared.core.phone.to_e164` returned.
    """
    number = phonenumbers.parse(e164)
    country = phonenumbers.region_code_for_number(number)
    zones = _number_zones(number)
    if country and (not zones or zones == set(TIMEZONE_DATA.get(str(number.country_code), ()))):
        zones = set(_country_zones(country)) or zones
    address = address_country.strip().upper() if address_country else None
    state = zones_of(address or country, address_state)
    if state:
        zones |= state
    elif address and address != country:
        zones |= _country_zones(address)
    return tuple(sorted(zones)) or (UNKNOWN_PLACE_ZONE,)


def _number_zones(number: phonenumbers.PhoneNumber) -> set[str]:
    """The zones phonenumbers gives the number, or every zone of its area code when that area
    code spans several (`shared.core.places.AREA_CODES`)."""
    if str(number.country_code) == NANP:
        area_code = phonenumbers.national_significant_number(number)[:3]
        if spans := area_code_zones(area_code):
            # phonenumbers lists most area codes with one zone, and those it knows span several
            # by a few exchanges, answering the others with a default zone.
            return set(spans)
    return set(time_zones_for_number(number)) - {UNKNOWN_TIMEZONE}


# Cached: sorting out the 2,000 prefixes of +1 takes 10-45 ms per country (once per instance).
@cache
def _country_zones(country: str) -> frozenset[str]:
    """Every zone phonenumbers lists for the number prefixes that belong to `country`.

    Prefixes are listed per calling code, and several countries share one (+1: the US, Canada
    and 23 others). A prefix belongs to a country when the prefix followed by the rest of one of
    the country's example numbers is a valid number there; when no prefix does, the calling
    code's own list stands in (+590: Guadeloupe, Saint Barthélemy and Saint Martin).
    """
    code = phonenumbers.country_code_for_region(country)
    if not code:
        return frozenset()
    calling_code = str(code)
    prefixes = {
        prefix[len(calling_code) :]: zones
        for prefix, zones in TIMEZONE_DATA.items()
        if prefix.startswith(calling_code)
    }
    if len(phonenumbers.region_codes_for_country_code(code)) > 1:
        # The calling code's own list holds the zones of all its countries: only the longer
        # prefixes tell them apart.
        examples = [
            str(example.national_number)
            for kind in (
                phonenumbers.PhoneNumberType.FIXED_LINE,
                phonenumbers.PhoneNumberType.MOBILE,
            )
            if (example := phonenumbers.example_number_for_type(country, kind)) is not None
        ]
        prefixes = {
            digits: zones
            for digits, zones in prefixes.items()
            if digits and any(_valid_in(country, code, digits, example) for example in examples)
        }
    found = frozenset(zone for zones in prefixes.values() for zone in zones)
    return found or frozenset(TIMEZONE_DATA.get(calling_code, ()))


def _valid_in(country: str, code: int, digits: str, example: str) -> bool:
    """Whether `digits` followed by the rest of `example` is a valid number of `country`."""
    if len(digits) >= len(example):
        return False
    number = phonenumbers.PhoneNumber(
        country_code=code, national_number=int(digits + example[len(digits) :])
    )
    return phonenumbers.is_valid_number_for_region(number, country)


def when_to_send(now: datetime, window: QuietHours | None, zones: Sequence[str]) -> Deferral | None:
    """None to send now; else the earliest moment at or after `now` at which every zone's clock
    reads a time outside the window (or, when no moment within `HORIZON` does, the earliest at
    which the most zones' clocks do: `partial`).

    Exact to the second: a due time is a window boundary (such as 08:00:00 local) or a clock
    change, never a rounded one. A boundary the clock skips (02:30 on the night clocks go
    forward) is passed at the clock change (03:00 local); one it reads twice (01:30 on the night
    they go back) is passed twice.
    """
    if window is None:
        return None
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if not zones:
        raise ValueError("at least one time zone is needed")
    now = now.astimezone(UTC)
    places = [ZoneInfo(name) for name in dict.fromkeys(zones)]
    quiet_now = _quiet(window, places, now)
    if not quiet_now:
        return None
    horizon = now + HORIZON
    moments = sorted({moment for zone in places for moment in _changes(window, zone, now, horizon)})
    best, still_quiet = now, quiet_now
    for moment in moments:
        if not now < moment <= horizon:
            continue
        quiet = _quiet(window, places, moment)
        if not quiet:
            return Deferral(moment, tuple(zones), _reason(quiet_now, moment, []), partial=False)
        if len(quiet) < len(still_quiet):
            best, still_quiet = moment, quiet
    return Deferral(best, tuple(zones), _reason(quiet_now, best, still_quiet), partial=True)


def _quiet(window: QuietHours, places: list[ZoneInfo], moment: datetime) -> list[datetime]:
    """The local times, at `moment`, of the zones inside the window then."""
    local_times = (moment.astimezone(zone) for zone in places)
    return [local for local in local_times if window.covers(local.time())]


def _changes(
    window: QuietHours, zone: ZoneInfo, now: datetime, horizon: datetime
) -> Iterator[datetime]:
    """Every moment `zone`'s clock reaches or jumps over a window boundary around [now, horizon].

    A zone can only leave the window at one of these, so checking them in order finds the first
    moment every zone is out of it. A day more on each side covers clocks that change at midnight.
    """
    day = now.astimezone(zone).date() - _DAY
    last = horizon.astimezone(zone).date() + _DAY
    while day <= last:
        for boundary in (window.start, window.end):
            yield from _readings(day, boundary, zone)
        day += _DAY


def _readings(day: date, wall: time, zone: ZoneInfo) -> tuple[datetime, ...]:
    """The UTC moments `zone`'s clock reads `wall` on `day`, and the clock change if it skips or
    repeats that reading."""
    earlier = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
    later = datetime.combine(day, wall.replace(fold=1), tzinfo=zone).astimezone(UTC)
    if earlier == later:
        return (earlier,)
    if earlier < later:
        return (earlier, _clock_change(zone, earlier, later), later)
    # Skipped: fold=0 is read with the offset from before the change, so it comes out later.
    return (_clock_change(zone, later, earlier),)


def _clock_change(zone: ZoneInfo, after: datetime, until: datetime) -> datetime:
    """The second in (after, until] at which `zone`'s UTC offset becomes that of `until`.

    The tz database has no two changes of one zone within two days of each other since 1970, and
    (after, until] spans one change, so halving finds it exactly.
    """
    offset = until.astimezone(zone).utcoffset()
    low, high = int(after.timestamp()), int(until.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _reason(quiet_now: list[datetime], due_at: datetime, still_quiet: list[datetime]) -> str:
    reason = f"{_clock_readings(quiet_now)}; due {due_at:%Y-%m-%dT%H:%M:%SZ}"
    if still_quiet:
        reason += (
            "; no moment in the next 24 hours is outside quiet hours in every zone, "
            f"still inside them then: {_clock_readings(still_quiet)}"
        )
    return reason


def _clock_readings(local_times: list[datetime]) -> str:
    return ", ".join(f"{local:%H:%M} in {local.tzinfo}" for local in local_times)
