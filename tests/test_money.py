"""Amounts as customers read them: symbol or code, the currency's decimals, thousands commas."""

import pytest

from shared.core.money import LONGEST_AMOUNT, decimals, format_amount


@pytest.mark.parametrize(
    ("minor_units", "currency", "expected"),
    [
        (2500, "usd", "$25.00"),
        (123450, "usd", "$1,234.50"),
        (5, "usd", "$0.05"),
        (2500, "eur", "€25.00"),
        (2500, "gbp", "£25.00"),
        (2500, "jpy", "¥2,500"),
        (2500, "JPY", "¥2,500"),
        (1500000, "krw", "₩1,500,000"),
        (2500, "cad", "CA$25.00"),
        (2500, "aud", "A$25.00"),
        (249900, "inr", "₹2,499.00"),
        (25000, "kwd", "KWD 25.000"),
        (1234567, "bhd", "BHD 1,234.567"),
        (2500, "chf", "CHF 25.00"),
        (2500, "xof", "XOF 2,500"),
        (99999999, "usd", "$999,999.99"),
    ],
)
def test_amount_is_written_in_its_currency(minor_units, currency, expected):
    assert format_amount(minor_units, currency) == expected


@pytest.mark.parametrize(
    ("currency", "places"), [("usd", 2), ("jpy", 0), ("vnd", 0), ("kwd", 3), ("tnd", 3), ("x", 2)]
)
def test_decimals_follow_stripe_lists(currency, places):
    assert decimals(currency) == places


@pytest.mark.parametrize("currency", ["usd", "jpy", "kwd", "chf", "cad", "xpf"])
def test_largest_stripe_amount_fits_the_length_the_templates_are_checked_with(currency):
    assert len(format_amount(99999999, currency)) <= LONGEST_AMOUNT
