"""Turn whatever a customer typed into Stripe's phone field into an E.164 number, or nothing."""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers

E164_PREFIX = "+"


def is_region(code: str) -> bool:
    """True for a two-letter region phonenumbers knows, such as `US` or `GB`."""
    return code in phonenumbers.SUPPORTED_REGIONS


def to_e164(raw: str | None, regions: Iterable[str | None]) -> str | None:
    """The number in E.164, or None when it is empty or not a valid number in any region tried.

    A number written with a `+` carries its own country; otherwise each region is tried in turn
    (the customer's address country first, then the configured default), because Stripe stores the
    phone exactly as typed.
    """
    if raw is None or not raw.strip():
        return None
    for region in dict.fromkeys(r.upper() for r in regions if r):
        number = _parse(raw, region)
        if number is not None:
            return number
    # Read without a region, only a number with its country code (`+`, or a full-width `＋`)
    # is one.
    return _parse(raw, None)


def _parse(raw: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def region_of(number: str | None) -> str | None:
    """The region an E.164 number belongs to (`+447911123456` -> `GB`); None for anything else
    (an email handle, a non-geographic number)."""
    if not number or not number.startswith(E164_PREFIX):
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return region if is_region(region or "") else None
