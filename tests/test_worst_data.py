"""Customer data at its worst: the text stays short, whole-charactered and safe to send."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.message import (
    DEFAULT_TEMPLATE,
    MAX_TEXT_LENGTH,
    Template,
    contains_url,
    placeholder_values,
)
from shared.core.phone import to_e164
from shared.core.text import ELLIPSIS, clean, graphemes
from standins import builders, linkrule

DEFAULT = Template.parse(DEFAULT_TEMPLATE)
OPT_OUT = "Reply STOP to opt out."
EMOJI_NAME = "👩🏽‍💻 Zoë 🇫🇷"
RTL_NAME = "محمد بن سلمان"
HEBREW = "שלום עולם"
LONG_NAME = "Bartholomew" * 46  # 506 characters, one word
LONG_DESCRIPTION = ("Enterprise plan with priority support, " * 52)[:2000]
any_text = st.text(st.characters(codec="utf-8"), max_size=2000)


def starts_with_whole_characters(short: str, original: str) -> bool:
    """`short` (without its ellipsis) is `original` cut at a character boundary."""
    body = short.removesuffix(ELLIPSIS).rstrip(" ,.;:-–—")
    clusters = list(graphemes(original))
    prefix = ""
    for cluster in clusters:
        if len(prefix) >= len(body):
            break
        prefix += cluster
    return prefix.rstrip(" ,.;:-–—") == body


@settings(max_examples=300, deadline=None)
@given(name=any_text, description=any_text)
def test_any_name_and_description_give_a_sendable_text(name, description):
    text = DEFAULT.render(placeholder_values(name, description, "$25.00", None))
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.endswith(OPT_OUT)
    assert not contains_url(text)
    assert not linkrule.contains_url(text)  # nor by the Linq stand-in's rule
    assert text.startswith("Hi ")


@settings(max_examples=300, deadline=None)
@given(description=any_text)
def test_a_shortened_description_never_splits_a_character(description):
    values = placeholder_values("Jane", description, "$25.00", None)
    text = DEFAULT.render(values)
    shown = text.removeprefix("Hi Jane, your payment for ").split(" didn't go through.")[0]
    assert starts_with_whole_characters(shown, values["description"])


@pytest.mark.parametrize("name", [EMOJI_NAME, RTL_NAME, HEBREW, LONG_NAME, "\u202eevil\u202c"])
def test_worst_names_render_within_the_limit(name):
    text = DEFAULT.render(placeholder_values(name, LONG_DESCRIPTION, "$25.00", None))
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.endswith(OPT_OUT)
    first = clean(name).split()[0]
    shown = text.removeprefix("Hi ").split(", your payment")[0]
    assert starts_with_whole_characters(shown, first)
    assert "\u202e" not in text


@settings(max_examples=500, deadline=None)
@given(raw=st.text(max_size=40), region=st.sampled_from([None, "US", "GB", "FR", "DE", "IN", "BR"]))
def test_any_phone_text_is_either_valid_e164_or_refused(raw, region):
    number = to_e164(raw, [region, "US"])
    assert number is None or re.fullmatch(r"\+[1-9]\d{6,14}", number)


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [
        ("+1 (415) 555-0140 ext. 99", "US", "+14155550140"),
        ("415-555-0141 x12", "US", "+14155550141"),
        ("1-800-FLOWERS", "US", "+18003569377"),
        ("0415 555 0142", None, None),
        ("00 44 7911 123457", "GB", "+447911123457"),
        ("07911 123458", "GB", "+447911123458"),
        ("+49 (0)30 1234567", "DE", "+49301234567"),
        ("06 12 34 56 79", "FR", "+33612345679"),
        ("+91 98765 43210", "IN", "+919876543210"),
        ("(11) 91234-5678", "BR", "+5511912345678"),
    ],
)
def test_phone_formats_from_around_the_world(pipeline, linq_api, phone, country, expected):
    customer = builders.customer(name=EMOJI_NAME, phone=phone, country=country)
    result = pipeline.result(pipeline.customer_with_invoice(customer))
    if expected is None:
        assert result["action"] == "skipped:no_phone"
    else:
        assert result["action"] == "sent"
        assert linq_api.messages()[0]["to"] == [expected]


@pytest.mark.parametrize("name", [EMOJI_NAME, RTL_NAME, LONG_NAME])
def test_worst_customer_data_goes_through_the_pipeline(pipeline, linq_api, name):
    customer = builders.customer(name=name)
    invoice = pipeline.customer_with_invoice(
        customer, description_line=f"1 × {LONG_DESCRIPTION} (at $25.00 / month)"
    )
    assert pipeline.result(invoice)["action"] == "sent"
    text = linq_api.messages()[0]["parts"][0]["value"]
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.endswith(OPT_OUT)
