"""Unicode-safe cleaning and shortening of customer-supplied strings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

ELLIPSIS = "…"

_ZWJ = "\u200d"
# Bidi overrides, embeddings and isolates can make a text read differently from what was sent.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SPACE_RUNS = re.compile(r"\s+")
# Invisible characters that emoji need: a joiner between two pictographs (👩‍💻), and the tag run
# of a subdivision flag (🏴 and tags: England). Every other format character goes.
_PICTOGRAPH = "\u2600-\u27bf\U0001f000-\U0001faff"
_EMOJI_FORMAT = re.compile(
    rf"(?<=[{_PICTOGRAPH}\ufe0f]){_ZWJ}(?=[{_PICTOGRAPH}])"
    r"|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"
)


def clean(value: str | None) -> str:
    """Collapse white space and drop control and bidi-override characters."""
    if not value:
        return ""
    value = _BIDI_CONTROLS.sub("", value)
    value = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return _SPACE_RUNS.sub(" ", value).strip()


def _without_format(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf")


def normalise(value: str) -> str:
    """`value` as a reader sees it: compatibility forms folded (NFKC: full-width ｅｖｉｌ．ｃｏｍ is
    evil.com) and invisible format characters (zero-width space, bidi marks...) dropped, so
    nothing hides between the characters of a word."""
    value = unicodedata.normalize("NFKC", value)
    kept, start = [], 0
    for match in _EMOJI_FORMAT.finditer(value):
        kept += [_without_format(value[start : match.start()]), match.group()]
        start = match.end()
    return "".join([*kept, _without_format(value[start:])])


def _extends(ch: str) -> bool:
    """True when `ch` belongs to the character before it (combining mark, emoji modifier...)."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
        or 0x1160 <= cp <= 0x11FF  # Hangul jamo vowels and finals join the leading consonant
    )


def _regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def graphemes(value: str) -> Iterator[str]:
    """Split into user-perceived characters (a practical subset of Unicode UAX #29)."""
    cluster = ""
    for ch in value:
        if not cluster:
            cluster = ch
            continue
        last = cluster[-1]
        joins = (
            _extends(ch)
            or last == _ZWJ
            or (last == "\r" and ch == "\n")
            or (
                _regional_indicator(ch)
                and _regional_indicator(last)
                and sum(map(_regional_indicator, cluster)) % 2 == 1
            )
        )
        if joins:
            cluster += ch
        else:
            yield cluster
            cluster = ch
    if cluster:
        yield cluster


def shorten(value: str, limit: int) -> str:
    """`value` cut to at most `limit` code points at a character boundary, ending in an ellipsis."""
    if len(value) <= limit:
        return value
    budget = limit - len(ELLIPSIS)
    kept = ""
    for cluster in graphemes(value):
        if len(kept) + len(cluster) > budget:
            break
        kept += cluster
    return kept.rstrip(" ,.;:-–—") + ELLIPSIS if budget >= 0 else ""
