"""Phone numbers as customers type them, normalised to E.164 or refused."""

import io
import json

import pytest
import requests

from shared.adapters import linq
from shared.core.log import log, mask_phone, redact
from shared.core.phone import to_e164
from standins.signing_secrets import new_linq_secret, new_stripe_secret


@pytest.mark.parametrize(
    ("raw", "regions", "expected"),
    [
        ("+14155550100", ["US"], "+14155550100"),
        ("+1 (415) 555-0100", [None, "US"], "+14155550100"),
        ("(415) 555-0100", [None, "US"], "+14155550100"),
        ("415.555.0100 ext. 12", ["US"], "+14155550100"),
        ("1-800-FLOWERS", ["US"], "+18003569377"),
        ("07911 123456", ["GB", "US"], "+447911123456"),
        ("00447911123456", ["GB"], "+447911123456"),
        ("+44 7911 123456", ["US"], "+447911123456"),
        ("06 12 34 56 78", ["FR", "US"], "+33612345678"),
        ("030 1234567", ["de"], "+49301234567"),
    ],
)
def test_valid_numbers_become_e164(raw, regions, expected):
    assert to_e164(raw, regions) == expected


def test_address_country_is_tried_before_the_default_region():
    assert to_e164("06 12 34 56 78", ["FR", "US"]) == "+33612345678"
    assert to_e164("06 12 34 56 78", [None, "US"]) is None


@pytest.mark.parametrize("raw", [None, "", "   ", "n/a", "12", "555", "+999 1234", "0000000000"])
def test_unusable_numbers_are_none(raw):
    assert to_e164(raw, ["US"]) is None


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550100", "+1******0100"),
        ("+447911123456", "+44******3456"),
        ("+33612345678", "+33*****5678"),
        ("+919876543210", "+91******3210"),
        ("+8613800138000", "+86*******8000"),
        ("+35312345678", "+353****5678"),
        # Never more than half of the national number: Iceland's have seven digits.
        ("+3541234567", "+354****567"),
        # A calling code nobody has: no country to keep.
        ("+99912345678", "+*******5678"),
        ("4155550100", "******0100"),
        ("+12345", "******"),
        # An iMessage reply may come from an Apple ID: its domain, never its name.
        ("jane.doe@icloud.com", "***@icloud.com"),
        (None, None),
        ("", ""),
    ],
)
def test_mask_keeps_the_country_code_and_the_last_four_for_every_country(number, masked):
    assert mask_phone(number) == masked


def test_log_lines_mask_numbers_inside_vendor_messages(capsys):
    log("INFO", "Linq said +14155550106 has opted out", reason="to +447911123456 failed", code=2024)
    line = capsys.readouterr().out
    assert "+1******0106 has opted out" in line
    assert "+44******3456 failed" in line
    assert "4155550106" not in line
    assert "7911123456" not in line


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("reach me on +44 7911 123456 today", "reach me on +44******3456 today"),
        ("or +1 (415) 555-0106", "or +1******0106"),
        ("or 4155550106.", "or +1******0106."),
        ("to +14155550106x failed", "to +1******0106x failed"),
        ("call 415-555-0106x", "call ***-***-0106x"),
        ("+33 6 12 34 56 78 / +14155550106", "+33*****5678 / +1******0106"),
        ("mail ana.leak@example.com.", "mail ***@example.com."),
        ("from jöran@exämple.se", "from ***@exämple.se"),
    ],
)
def test_a_number_is_masked_however_it_is_written(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "replied STOP on 2026-11-26 14:59 UTC (our own opt-out list)",
        "03:12 in America/Chicago; due 2026-11-27T14:00:00Z",
        "IDR 9,999,999,999.99 for in_1OaBcD2345678901, retry_after 30, code 2027",
        "version 2026-11-27T00:00:00.123456Z, epoch 1732665600",
    ],
)
def test_dates_amounts_and_ids_are_not_taken_for_numbers(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("key sk_test_4eC39HqLyjWDarjtT1zdp7dc", "key sk_test_****p7dc"),
        ("restricted rk_live_51HxYzAbCdEf", "restricted rk_live_****CdEf"),
    ],
)
def test_keys_are_masked_whole(text, masked):
    assert redact(text) == masked


# Made per run: a signing secret written here would be one anyone can read. Named by kind, not
# value: xdist's workers must collect the same test ids.
@pytest.mark.parametrize("secret", [new_stripe_secret(), new_linq_secret()], ids=["stripe", "linq"])
def test_signing_secrets_are_masked_whole(secret):
    # A Standard Webhooks secret (Linq's) is base64: masked to its end, not cut at `+`, `/`, `=`.
    secret = secret[:10] + "+/" + secret[10:]
    assert redact(f"secret {secret} refused") == f"secret whsec_****{secret[-4:]} refused"


def test_a_national_number_is_read_as_its_region_writes_it():
    assert redact("07911 123456", "GB") == "+44******3456"
    assert redact("06 12 34 56 78", "FR") == "+33*****5678"


def test_numbers_nested_in_a_vendors_error_fields_are_masked_too(capsys):
    # Linq documents `error.message` as a string; an answer that is an object instead must not
    # carry the recipient's number whole into the error's detail or the log line: it is kept as
    # its JSON, masked.
    answer = requests.Response()
    answer.status_code = 400
    answer._content = json.dumps(
        {"error": {"code": 1001, "message": {"to": ["+14155550106 is not reachable"]}}}
    ).encode()
    error = linq._error("/chats", answer)
    log("ERROR", f"failed: {error.reason}", **error.detail)
    line = capsys.readouterr().out
    assert "4155550106" not in line + repr(error.detail) + str(error)
    assert json.loads(line)["linq_message"] == '{"to": ["+1******0106 is not reachable"]}'


def test_a_lone_surrogate_in_a_field_still_gives_one_json_line():
    # JSON may escape half an emoji ("\ud83d"), which no UTF-8 stream can write: the line is
    # written anyway (escaped), never an exception that fails the run after its work is done.
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    log("WARNING", "delivery failed", stream=stream, reason="cut \ud83d here")
    stream.seek(0)
    assert json.loads(stream.read())["reason"] == "cut \ud83d here"
