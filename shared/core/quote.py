"""What the team reads of a customer's own words: one line, cut short, every number masked."""

from __future__ import annotations

import re

from shared.core.log import LOCAL_PART, redact
from shared.core.text import ELLIPSIS, clean, normalise, shorten

# A note quotes at most this much of a reply: enough to act on, short enough for a channel.
MAX_QUOTE = 300
# The window is masked whole and then cut to the quote, so that what straddles the quote's end
# is masked before it is cut in half: the margin is longer than anything a mask must see whole
# (an e-mail address: 64 + 1 + 253 characters by RFC 5321; a number is far shorter).
MARGIN = 320
# Normalising drops invisible characters: the raw cut is wider, so a reply that hides its words
# between hundreds of zero-width spaces still fills the window.
RAW_WINDOW = 4 * (MAX_QUOTE + MARGIN)
# Whatever people put between the digits of a number: spaces of every kind, dots, dashes,
# slashes, brackets, a plus, and combining marks or a keycap drawn on a digit; a comma only
# between two digits (415,555,0199), so that a list (1234, 5678) reads as written. Not a colon:
# times (14:30) read as written.
_SEPARATORS = (
    r"\s.\-‐‑‒–—−/\\()\[\]+_~"
    "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f"
)
# A run of digits and separators, read once: each repetition ends on a digit and nothing is
# given back (possessive), so the pattern never reads a run twice.
_DIGIT_RUN = re.compile(rf"\d(?:(?:[{_SEPARATORS}]*+|,)\d)*+")
# Seven digits are the shortest a phone number written with its area code has; fewer (a
# day, an amount, an order of 123456) are left as written.
_MIN_DIGITS = 7
# The runs of that many digits a reply needs whole, and no phone number is written like: a date
# with its year ("I'll pay on 12/01/2026": day and month, then a year of this century or the
# last, or the other way round, the same separator twice), and an amount grouped in thousands
# by commas (1,250,000.00).
_DATE = re.compile(r"\d{1,2}([./-])\d{1,2}\1(?:19|20)\d\d|(?:19|20)\d\d([./-])\d{1,2}\2\d{1,2}")
_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
_KEPT_DIGITS = 4
# The name before an @, whatever follows it (a domain cut off, a host without a dot).
_LOCAL_PART = re.compile(LOCAL_PART + "(?=@)")
# What a cut may leave the front of at the end of the window, read backwards from the cut: a word
# (an address, a number glued to letters; no more than the margin, so that a long last word still
# leaves a full quote), then the digits and separators before it.
_CUT_TAIL = re.compile(rf"[\w.+\-@%]{{0,{MARGIN}}}+(?:[{_SEPARATORS}]*+\d)*+[{_SEPARATORS}]*+")


def quote(text: str, region: str) -> str:
    """`text` as the team may read it: on one line (no line breaks, control or bidi characters
    to draw a line of its own), at most MAX_QUOTE characters, every run of seven or more digits
    masked but for its last four however it is written (`call4155550199now`, `+1 415 555 0199`
    with thin spaces, `07911 123456` from any country), numbers read as `region` writes them
    shown as `+44******3456`, every address's name and every secret masked.

    Only a window of the text is read (cut first, then masked, then cut short), so a megabyte
    costs what three hundred characters do.
    """
    raw = text[:RAW_WINDOW]
    window, cut = cut_window(clean(normalise(raw)), MAX_QUOTE + MARGIN, len(raw) < len(text))
    said = _LOCAL_PART.sub("***", _DIGIT_RUN.sub(_mask_digits, redact(window, region)))
    return shorten(said.rstrip() + ELLIPSIS if cut else said, MAX_QUOTE)


def cut_window(text: str, size: int, cut: bool = False) -> tuple[str, bool]:
    """The first `size` characters of `text` to mask, and whether anything was cut (or, with
    `cut`, had been already). A cut may leave the front of an address or a number that goes on
    past it: the end of a cut window is left out as far back as one could begin, rather than be
    shown half unmasked."""
    window = text[:size]
    if not (cut or len(window) < len(text)):
        return window, False
    # Matched on the reversed window, so that the pattern is tried at one position only.
    tail = _CUT_TAIL.match(window[::-1])
    return window[: len(window) - (tail.end() if tail else 0)], True


def _mask_digits(run: re.Match[str]) -> str:
    written = run.group()
    digits = sum(c.isdecimal() for c in written)
    if digits < _MIN_DIGITS or _DATE.fullmatch(written) or _AMOUNT.fullmatch(written):
        return written
    hidden = digits - _KEPT_DIGITS
    masked = []
    for c in written:
        if c.isdecimal() and hidden:
            hidden -= 1
            c = "*"
        masked.append(c)
    return "".join(masked)
