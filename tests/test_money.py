"""Amounts as customers read them: symbol or code, the currency's decimals, thousands commas."""

import pytest

from shared.core.money import LONGEST_AMOUNT, decimals, format_amount, largest_amount


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


@pytest.mark.parametrize(
    ("currency", "largest", "written"),
    [
        # Stripe: up to twelve digits for IDR, eight for every other currency.
        ("idr", 999_999_999_999, "IDR 9,999,999,999.99"),
        ("IDR", 999_999_999_999, "IDR 9,999,999,999.99"),
        ("usd", 99_999_999, "$999,999.99"),
        ("jpy", 99_999_999, "¥99,999,999"),
        ("kwd", 99_999_999, "KWD 99,999.999"),
        ("xof", 99_999_999, "XOF 99,999,999"),
        ("chf", 99_999_999, "CHF 999,999.99"),
        ("zzz", 99_999_999, "ZZZ 999,999.99"),
    ],
)
def test_largest_stripe_amount_of_each_currency(currency, largest, written):
    assert largest_amount(currency) == largest
    assert format_amount(largest, currency) == written
    assert len(written) <= LONGEST_AMOUNT


def test_longest_amount_is_that_of_the_rupiah():
    assert LONGEST_AMOUNT == len("IDR 9,999,999,999.99") == 20
