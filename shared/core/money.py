"""An amount in Stripe's minor units written for a customer: `$25.00`, `¥2,500`, `CHF 25.00`."""

from __future__ import annotations

# English symbols for the currencies customers see most; any other currency is written with its
# upper-case ISO code and a space, which every reader understands.
SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "cad": "CA$",
    "aud": "A$",
    "nzd": "NZ$",
    "hkd": "HK$",
    "mxn": "MX$",
    "brl": "R$",
    "inr": "₹",
    "krw": "₩",
    "cny": "CN¥",
    "ils": "₪",
    "php": "₱",
    "vnd": "₫",
}
# Stripe's lists of currencies whose amounts are not in hundredths (docs.stripe.com/currencies).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# The largest amount Stripe accepts, in minor units (docs.stripe.com/currencies, "Minimum and
# maximum charge amounts"): twelve digits for IDR (IDR 9,999,999,999.99), eight for every other
# currency ($999,999.99, KWD 99,999.999, ¥99,999,999).
_MAX_MINOR_UNITS = {"idr": 10**12 - 1}
_DEFAULT_MAX_MINOR_UNITS = 10**8 - 1
# Stands for every currency without a symbol or a special rule: its code is written out.
_ANY_OTHER_CURRENCY = "xxx"


def decimals(currency: str) -> int:
    """How many digits Stripe's minor units hold after the decimal point in `currency`."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def format_amount(minor_units: int, currency: str) -> str:
    """`minor_units` (not negative) of `currency`: symbol or code, decimals, thousands commas."""
    places = decimals(currency)
    # Integer arithmetic: a float would round some eight-digit amounts.
    whole, fraction = divmod(minor_units, 10**places)
    number = f"{whole:,}" + (f".{fraction:0{places}d}" if places else "")
    code = currency.lower()
    return SYMBOLS.get(code, f"{code.upper()} ") + number


def largest_amount(currency: str) -> int:
    """The largest amount of `currency`, in minor units, that Stripe accepts."""
    return _MAX_MINOR_UNITS.get(currency.lower(), _DEFAULT_MAX_MINOR_UNITS)


# The longest amount any currency can produce when formatted (IDR's, 20 characters): the startup
# check of a template's length counts it, since the amount is never shortened.
LONGEST_AMOUNT = max(
    len(format_amount(largest_amount(code), code))
    for code in {*SYMBOLS, *ZERO_DECIMAL, *THREE_DECIMAL, *_MAX_MINOR_UNITS, _ANY_OTHER_CURRENCY}
)
