"""Structured log lines for Cloud Logging: one JSON object per line on stdout."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import phonenumbers

# Cloud Logging lifts `severity` and `message` out of a JSON line; every other key stays queryable
# as jsonPayload.KEY.
INFO = "INFO"
WARNING = "WARNING"
ERROR = "ERROR"


# What must never reach a log whole, wherever it hides (a vendor's error message, an exception's
# text, a traceback): phone numbers in E.164 or written the North American way, email addresses,
# and API keys, signing secrets and bearer tokens.
# Every pattern does work in proportion to its input, whatever the input: each starts only where
# what it looks for can start (a `+`, a run of address characters, a key's prefix) and reads a
# bounded stretch from there, or a run no other attempt reads again. A pattern that rescans from
# every position is quadratic: a megabyte of `a.` took the e-mail pattern minutes.
_E164 = re.compile(r"\+\d{6,15}(?!\d)")
_NANP = re.compile(r"(?<![\w+])\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?!\d)")
# The name before the @ is read once, as a whole run (possessive, and started only where a run
# starts): the domain after it is what the mask keeps. Its labels are split by dots only, so
# there is one way to read them and the pattern cannot backtrack into a quadratic search.
LOCAL_PART = r"(?<![\w.+-])[\w.+-]++"
_EMAIL = re.compile(LOCAL_PART + r"@((?:[\w-]+\.)+[^\W\d_]{2,})(?![\w-])")
# A Stripe key or signing secret is letters and digits; a Standard Webhooks secret (Linq's) is
# `whsec_` and base64, whose `+`, `/` and `=` must not end the match half-way.
_SECRET = re.compile(r"\b((?:sk|rk|pk)_(?:test|live)_)[A-Za-z0-9]+|\b(whsec_)[A-Za-z0-9+/=]+")
_BEARER = re.compile(r"\b([Bb]earer\s+)\S+")


def log(severity: str, message: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON line; fields that are None are left out, phone numbers are masked."""
    entry: dict[str, Any] = {"severity": severity, "message": redact(message)}
    entry.update((key, redact_value(value)) for key, value in fields.items() if value is not None)
    out = stream if stream is not None else sys.stdout
    line = json.dumps(entry, ensure_ascii=False, default=str)
    # A lone surrogate (half an emoji, from a JSON escape) cannot be written as UTF-8: it goes as
    # its JSON escape, so the line is still written, and still JSON.
    out.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    out.flush()


def redact(text: str, region: str = "US") -> str:
    """`text` with every phone number, email address and secret in it masked. A number is found
    however it is written (`+44 7911 123456`, `(415) 555-0100`; a national number as written in
    `region`) by libphonenumber's matcher, which takes only valid numbers (not dates, amounts or
    ids); the patterns then catch what it leaves (a number glued to a word, a fictional one)."""
    text = _mask_numbers(text, region)
    text = _E164.sub(lambda match: mask_phone(match.group()) or "", text)
    text = _NANP.sub(lambda match: "***-***-" + match.group()[-4:], text)
    text = _EMAIL.sub(lambda match: "***@" + match.group(1), text)
    text = _SECRET.sub(
        lambda match: (match.group(1) or match.group(2)) + "****" + match.group()[-4:], text
    )
    return _BEARER.sub(lambda match: match.group(1) + "****", text)


# Fewer digits than this cannot be a phone number: the matcher is not run at all.
_MIN_DIGITS = 7


def _mask_numbers(text: str, region: str) -> str:
    if sum(c.isdigit() for c in text) < _MIN_DIGITS:
        return text
    found = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    masked, end = [], 0
    for match in found:
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        masked += [text[end : match.start], mask_phone(e164) or ""]
        end = match.end
    return "".join(masked) + text[end:]


def redact_value(value: Any) -> Any:
    """`value` with `redact` applied to every string in it, inside lists and objects too: a
    vendor's answer is not always the shape its documentation gives."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return value


def mask_phone(number: str | None) -> str | None:
    """One shape for every country: the country code and the last four digits, the rest starred
    (`+14155550100` -> `+1******0100`, `+447911123456` -> `+44******3456`). Never more than half
    of the national number shows; a number of six digits or fewer is starred whole, and an
    iMessage handle that is an e-mail address keeps only its domain."""
    if not number:
        return number
    if "@" in number:
        return "***@" + number.rpartition("@")[2]
    international = number.startswith("+")
    digits = number[1:] if international else number
    if len(digits) <= 6:
        return "*" * len(number)
    code = _country_code(digits) if international else ""
    national = digits[len(code) :]
    shown = min(4, len(national) // 2)
    hidden = len(national) - shown
    return ("+" if international else "") + code + "*" * hidden + national[hidden:]


# ITU's calling codes are prefix-free: at most one of them starts a number.
_CALLING_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _country_code(digits: str) -> str:
    return next((digits[:n] for n in (1, 2, 3) if digits[:n] in _CALLING_CODES), "")
