"""Linq's first-message rule as the stand-in enforces it: does a text hold a link?

Written apart from the product's filter (shared/core/message.py), and from a different source:
the stand-in takes the public suffix list at its word, the product a stricter shape rule, so a
test that renders texts with the product and reads them with this module checks one against the
other. Linq does not say how it finds a URL; this assumes it sees what a reader would.
"""

from __future__ import annotations

import re
import unicodedata

from publicsuffixlist import PublicSuffixList

# The list's snapshot bundled with the package; never fetched. Unknown endings are no domain.
_SUFFIXES = PublicSuffixList(accept_unknown=False)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://\S", re.IGNORECASE)
_WWW = re.compile(r"\bwww\.\S", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d)")
# Dotted names; a label is anything up to a dot, a space or punctuation that ends a host
# (marks included: the Devanagari vowel signs of .भारत are no letters to \w).
_LABEL = r"[^\s.,;:!?/@#()\[\]{}<>\"'|\\]+"
_DOTTED = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


def _as_read(text: str) -> str:
    """What a reader (and a link detector) sees: compatibility forms folded, and no invisible
    format character (zero-width space, joiner, bidi mark) between the characters."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def contains_url(text: str) -> bool:
    """Whether `text` holds a scheme, www., an IPv4 address or a name under a public suffix."""
    seen = _as_read(text)
    if _SCHEME.search(seen) or _WWW.search(seen) or _IPV4.search(seen):
        return True
    return any(_SUFFIXES.publicsuffix(name.lower()) for name in _DOTTED.findall(seen))
