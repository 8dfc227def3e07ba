"""The text a customer receives: template checks at startup, rendering within the length limit."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from shared.core.errors import ConfigError
from shared.core.invoice import FALLBACK_DESCRIPTION
from shared.core.money import LONGEST_AMOUNT
from shared.core.sms import is_gsm7, sms_cost
from shared.core.text import (
    CJK,
    ELLIPSIS,
    GSM_ELLIPSIS,
    CharacterMap,
    clean,
    normalise,
    shorten,
)

DEFAULT_TEMPLATE = (
    "Hi {first_name}, your payment for {description} didn't go through. "
    "You can update your card and retry with the link below. Reply STOP to opt out."
)
# The default when BRAND_NAME is set: a recipient who does not know the Linq number sees at once
# who is writing, and what is due.
BRANDED_TEMPLATE = (
    "{brand}: Hi {first_name}, your {amount} payment for {description} didn't go through. "
    "You can update your card and retry with the link below. Reply STOP to opt out."
)
# When the invoice's payment waits for the customer to confirm it (3-D Secure): nothing failed
# that a new card would fix, the bank asks for a confirmation (ACTION_TEMPLATE).
DEFAULT_ACTION_TEMPLATE = (
    "Hi {first_name}, your bank asks you to confirm your {amount} payment for {description}. "
    "You can confirm it with the link below. Reply STOP to opt out."
)
BRANDED_ACTION_TEMPLATE = f"{{brand}}: {DEFAULT_ACTION_TEMPLATE}"
# "Under 320 characters". On SMS that is at most 3 segments of GSM-7, or 5 of UCS-2 (sms.py).
MAX_TEXT_LENGTH = 319
PLACEHOLDERS = ("first_name", "description", "amount", "brand")
# Values shortened when the text is too long, in this order; the template's own words, the amount
# and the brand never are, so the opt-out line always survives.
SHRINK_ORDER = ("description", "first_name")
NO_NAME = "there"
# A "first name" longer than this is data-entry noise; cutting it early leaves room for the product.
MAX_FIRST_NAME = 40
OPT_OUT_KEYWORD = "STOP"

# Linq rejects a URL anywhere in the first message of a new chat (400, code 1005), a bare domain
# included, and does not say how it finds one. So a word goes when it has the shape of a link: a
# scheme, www., an IPv4 address, or a host name: a dot between a character and a label that
# starts with a letter and goes on (every top-level domain in the public suffix list does:
# tests/test_message.py checks all of them). A shape rule rather than the public suffix list: it
# is stricter (it also takes Node.js or Mr.Smith, a small loss in a text that must go out), needs
# no update for new endings, and costs nothing, where publicsuffixlist costs the recover
# function's cold start ~64 ms (8 ms import, 56 ms to parse the list), most of its margin.
# Applied word by word to the skeleton of normalised text (below), words being runs without white
# space, so nothing can hide a dot. A dot is also one "defanged" in brackets: evil[.]com,
# evil(dot)com.
_DOT = r"(?:\.|[\[({](?:\.|dot)[\])}])"
_LINK_SHAPE = re.compile(
    r"://"
    rf"|www{_DOT}"
    rf"|\d{_DOT}\d{{1,3}}{_DOT}\d{{1,3}}{_DOT}\d"
    rf"|[^\s.]{_DOT}[^\W\d_][^\s.,;:!?)\]}}'\"]",
    re.IGNORECASE,
)
# UTS #46 reads the ideographic full stops 。 and ｡ (NFKC makes both 。) as dots between labels,
# as it does the full-width ． (which NFKC makes a dot): so does the host rule, except next to a
# Chinese, Japanese or Korean character, where 。 is the full stop that ends a sentence. Else
# every sentence would read as a host, and a Japanese template with "。Reply STOP" be refused;
# a host with a label in those scripts next to the dot (ペイパル。com) is the price.
_IDEOGRAPHIC_DOT = re.compile(rf"(?<!{CJK})\u3002(?!{CJK})")
# STOP must stand as a word of its own: not beside a letter or digit of a script that spaces its
# words ("AbSTOP", "ＳＴＯＰ１"), but beside Chinese or Japanese, which write no spaces between
# words ("回复STOP退订", "STOPと返信"), it does.
_WORD_LETTER = rf"(?:(?!{CJK})\w|[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a])"
_OPT_OUT_WORD = re.compile(rf"(?<!{_WORD_LETTER}){OPT_OUT_KEYWORD}(?!{_WORD_LETTER})")
# A number to call or text: a tel:, sms:, FaceTime... URI, or seven digits or more (any script's
# digits) with nothing but what people write between a phone number's digits: white space, dots,
# dashes, slashes, brackets, middle dots, underscores, blank-looking characters. Seven is the
# shortest local number; an order number or a date of as many digits goes too, a small loss.
# Commas do not join (an amount's thousands: $10,000.00).
_CALL_URI = re.compile(
    r"\b(?:tel|sms|smsto|mms|mmsto|callto|facetime|facetime-audio|imessage|sip|sips):(?=\S)",
    re.IGNORECASE,
)
# Between words, white space joins too; within one, these (what the skeleton leaves of them).
_JOINING = (
    ".-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b/()[]{}_·•\u2027\u30fb"
    "\u2800\u3164\u115f\u1160"
)
_JOINED = rf"[{re.escape(_JOINING)}]*"
_JOINERS_ONLY = re.compile(_JOINED)
# A word's start that goes on with the digit run of the word before.
_RUN_GOES_ON = re.compile(rf"(?:{_JOINED}\d)+")
# What a run of digits may hold: digits and what joins them.
_IN_A_RUN = re.compile(rf"[{re.escape(_JOINING)}\d]*")
_DIGIT = re.compile(r"\d")
MIN_PHONE_DIGITS = 7
# A run of that many digits, with only what joins digits between them.
_NUMBER = re.compile(rf"\d(?:{_JOINED}\d){{{MIN_PHONE_DIGITS - 1}}}")


def _skeleton(text: str) -> str:
    """`text` as the link rules read it: combining marks dropped (a mark after a dot, or between
    two digits, hides neither), digits NFKC leaves alone read as digits (❽, ⓿), and ideographic
    full stops read as dots where they end no sentence."""
    if text.isascii():
        return text
    return _IDEOGRAPHIC_DOT.sub(".", text.translate(_AS_READ))


def _as_read(ch: str) -> str:
    kind = unicodedata.category(ch)
    if kind.startswith("M"):
        return ""
    digit = unicodedata.digit(ch, None) if kind == "No" else None
    return ch if digit is None else str(digit)


_AS_READ = CharacterMap(_as_read)


def contains_url(text: str) -> bool:
    """Whether `text` holds anything that reads as a link."""
    return _LINK_SHAPE.search(_skeleton(normalise(text))) is not None


def without_links(value: str) -> str:
    """`value`, normalised, without the words that read as a link or a phone number, so
    customer data can neither break the opener nor give the recipient a number to call."""
    text = clean(normalise(value))
    words = text.split()
    # An ASCII word is its own skeleton.
    reads = words if text.isascii() else list(map(_skeleton, words))
    return " ".join(_without_numbers(zip(words, reads, strict=True)))


class _Run(NamedTuple):
    """A run of digits still open after a word: how many, and the kept word it starts in."""

    digits: int
    start: int


def _without_numbers(words: Iterable[tuple[str, str]]) -> list[str]:
    """The words of `words` (each with its skeleton) but every one that holds part of a run of
    MIN_PHONE_DIGITS digits or more, as the text reads once they are gone, and every one that
    reads as a link: two halves of a number that only meet when what stood between them goes are
    one number, and a tel: or sms: URI goes with the words its number goes on into. Each word is
    read once and dropped at most once."""
    kept: list[tuple[str, _Run | None]] = []
    # Inside a run already cut out: the words it goes on into go too.
    cutting = False
    for word, read in words:
        if cutting and (goes_on := _RUN_GOES_ON.match(read)) is not None:
            cutting = _still_open(read, goes_on.end())
            continue
        cutting = False
        if (uri := _CALL_URI.search(read)) is not None:
            cutting = _still_open(read[uri.end() :].lstrip("+"))
            continue
        if _LINK_SHAPE.search(read):
            continue
        run = kept[-1][1] if kept else None
        if _DIGIT.search(read) is None:
            # The run goes on through a word of what joins digits, and ends at any other.
            kept.append((word, run if _JOINERS_ONLY.fullmatch(read) else None))
            continue
        # Read with the digits of the run still open before it (zeros: only their count
        # matters), the word ends a number where the run reaches MIN_PHONE_DIGITS.
        carried = run.digits if run else 0
        reading = "0" * carried + read
        if (number := _NUMBER.search(reading)) is not None:
            if run and number.start() < carried:
                del kept[run.start :]
            cutting = _still_open(reading, number.end())
            continue
        # The run still open after the word: its last stretch of digits and joiners, which
        # goes back into the run before it when it is the whole word.
        tail = _IN_A_RUN.match(reading[::-1]).group()
        digits = len(_DIGIT.findall(tail))
        start = run.start if run and len(tail) == len(reading) else len(kept)
        kept.append((word, _Run(digits, start) if digits else None))
    return [word for word, _ in kept]


def _still_open(text: str, start: int = 0) -> bool:
    """Whether a digit run that reaches `text[start:]`, the end of a word, may go on into the
    next."""
    return _IN_A_RUN.fullmatch(text, start) is not None


def _first_word(name: str | None) -> str:
    """The first word of the customer's name, or a friendly stand-in when there is none."""
    words = without_links(name or "").split()
    return words[0] if words else NO_NAME


def first_name(name: str | None) -> str:
    """The first word, at most MAX_FIRST_NAME characters: how the team's notes name the customer."""
    return shorten(_first_word(name), MAX_FIRST_NAME)


def placeholder_values(
    name: str | None, description: str, amount: str, brand: str | None
) -> dict[str, str]:
    """The values for the template's placeholders; customer data is freed of anything Linq would
    read as a URL and of phone numbers (the amount is ours, and BRAND_NAME is checked at
    startup). `Template.render` shortens them."""
    return {
        "first_name": _first_word(name),
        "description": without_links(description) or FALLBACK_DESCRIPTION,
        "amount": amount,
        "brand": brand or "",
    }


@dataclass(frozen=True)
class Template:
    """A validated message template; build with `Template.parse`."""

    text: str
    fields: tuple[str, ...]

    @classmethod
    def parse(
        cls, text: str, variable: str = "MESSAGE_TEMPLATE", brand: str | None = None
    ) -> Template:
        """Check a template and say precisely what is wrong with it (a startup error).

        `brand` is BRAND_NAME: it is never shortened, so the length check counts it in full.
        """
        if not text.strip():
            raise ConfigError(f"{variable} is empty; unset it to use the default text")
        fields: list[str] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ConfigError(f"{variable} is not a valid template: {exc}") from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name == "url":
                raise ConfigError(
                    f"{variable} must not contain {{url}}: the payment link is sent as its own "
                    "message after the text, because Linq rejects a URL in the first message"
                )
            if name not in PLACEHOLDERS:
                raise ConfigError(
                    f"{variable} has an unknown placeholder {{{name}}}; "
                    f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )
            if spec or conversion:
                raise ConfigError(f"{variable}: write {{{name}}} without a format or conversion")
            if name == "brand" and brand is None:
                raise ConfigError(f"{variable} uses {{brand}}: set BRAND_NAME, or remove it")
            fields.append(name)
        template = cls(text=text, fields=tuple(fields))
        # With a word in every placeholder: "{first_name}.com" reads as a host, and in
        # "ST{amount}OP" or "Reply {first_name}STOP" the word STOP is not one.
        sample = template._format(dict.fromkeys(PLACEHOLDERS, "Ab"))
        if not _OPT_OUT_WORD.search(sample):
            raise ConfigError(
                f"{variable} must tell the recipient how to opt out with the word "
                f"{OPT_OUT_KEYWORD} (for example 'Reply STOP to opt out.')"
            )
        if contains_url(sample):
            raise ConfigError(
                f"{variable} contains a URL (or a placeholder against a dot and a word, which "
                "renders as one); Linq rejects a URL in the first message of a new chat, and the "
                "payment link follows in its own message"
            )
        # The shortest the text can get: shortened values down to an ellipsis, and the brand and
        # the longest amount Stripe can hold, which are never cut.
        shortest = template._format(
            {
                **dict.fromkeys(SHRINK_ORDER, ELLIPSIS),
                "amount": "0" * LONGEST_AMOUNT,
                "brand": brand or "",
            }
        )
        if len(shortest) > MAX_TEXT_LENGTH:
            raise ConfigError(
                f"{variable} is {len(shortest)} characters before any customer data "
                f"(counting BRAND_NAME and the longest amount); the text must stay under "
                f"{MAX_TEXT_LENGTH + 1}"
            )
        return template

    def _format(self, values: Mapping[str, str]) -> str:
        return self.text.format_map(values)

    def render(self, values: Mapping[str, str]) -> str:
        """The text with `values` filled in, shortening values (never the template) to fit.

        A cut ends in "..." while the rest of the text is GSM-7: "…" is not in GSM 03.38, and
        would make the whole text UCS-2 on SMS (a 319-character text, 5 segments instead of 3).
        Once the text is UCS-2 anyway, the one-character "…" leaves two more for the values.
        Either way, never the one that costs more segments.
        """
        plain, compact = (self._fit(values, ellipsis) for ellipsis in (GSM_ELLIPSIS, ELLIPSIS))
        preferred = (plain, compact) if is_gsm7(plain) else (compact, plain)
        # `parse` made sure the compact one fits; the plain one may not, by two characters a cut.
        fitting = [text for text in preferred if len(text) <= MAX_TEXT_LENGTH]
        return min(fitting, key=lambda text: sms_cost(text).segments)

    def _fit(self, values: Mapping[str, str], ellipsis: str) -> str:
        current = dict(values)
        if "first_name" in current:
            current["first_name"] = shorten(current["first_name"], MAX_FIRST_NAME, ellipsis)
        text = self._format(current)
        for key in SHRINK_ORDER:
            uses = self.fields.count(key)
            if len(text) <= MAX_TEXT_LENGTH or not uses:
                continue
            excess = len(text) - MAX_TEXT_LENGTH
            limit = max(len(ellipsis), len(current[key]) - math.ceil(excess / uses))
            current[key] = shorten(current[key], limit, ellipsis)
            text = self._format(current)
        return text


@dataclass(frozen=True)
class Templates:
    """A text and its language variants, by lower-case language code: MESSAGE_TEMPLATE and the
    MESSAGE_TEMPLATE_<LANG>, or ACTION_TEMPLATE and its own (with the MESSAGE_TEMPLATE_<LANG> of
    a language it has none for)."""

    default: Template
    by_language: Mapping[str, Template]

    def for_locales(self, preferred_locales: Sequence[str]) -> Template:
        """The template of the customer's first preferred language (`es-419` is `es`), if any."""
        if not preferred_locales:
            return self.default
        language = preferred_locales[0].split("-")[0].lower()
        return self.by_language.get(language, self.default)
