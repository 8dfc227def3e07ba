"""Unicode-safe cleaning and shortening of customer-supplied strings."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import regex

ELLIPSIS = "…"
# The same in GSM 03.38's alphabet, which has no "…": for a text that can stay GSM-7 on SMS.
GSM_ELLIPSIS = "..."

# A character of Chinese, Japanese or Korean (with their punctuation and full-width forms): the
# scripts where a word may touch the next with no space.
CJK = (
    r"[\u1100-\u11ff\u2e80-\u2fdf\u3000-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    r"\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)
_ZWJ = "\u200d"
# Bidi overrides, embeddings and isolates can make a text read differently from what was sent.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Unicode's control characters (Cc), fixed for good.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
# Invisible characters that emoji need: a joiner between two pictographs (👩‍💻), and the tag run
# of a subdivision flag (🏴 and tags: England). Every other format character goes.
_PICTOGRAPH = "\u2600-\u27bf\U0001f000-\U0001faff"
_EMOJI_FORMAT = re.compile(
    rf"(?<=[{_PICTOGRAPH}\ufe0f]){_ZWJ}(?=[{_PICTOGRAPH}])"
    r"|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"
)


# How many characters a `CharacterMap` remembers: far more than a text in any one script uses,
# and a bound on what a text of many distinct characters makes it hold.
_REMEMBERED = 4096


class CharacterMap(dict[int, str]):
    """A `str.translate` table that works each character out by `rule` the first time it meets
    it, so that a text is translated in C, one dictionary look-up a character. It remembers at
    most _REMEMBERED characters: past that it starts again, so no text grows it without end,
    and nothing is worked out before it is needed (no table of every code point at import)."""

    def __init__(self, rule: Callable[[str], str]) -> None:
        super().__init__()
        self._rule = rule

    def __missing__(self, code: int) -> str:
        read = self._rule(chr(code))
        if len(self) >= _REMEMBERED:
            self.clear()
        self[code] = read
        return read


_FORMAT_DROPPED = CharacterMap(lambda ch: "" if unicodedata.category(ch) == "Cf" else ch)


def clean(value: str | None) -> str:
    """Collapse white space and drop control and bidi-override characters."""
    if not value:
        return ""
    return " ".join(_CONTROLS.sub(" ", _BIDI_CONTROLS.sub("", value)).split())


def without_format(value: str) -> str:
    """`value` without its invisible format characters (Unicode's Cf: zero-width space, bidi
    marks, tag characters...)."""
    # ASCII holds none, and a format character is never printable: most texts are left as
    # they are after one pass in C.
    if value.isascii() or value.isprintable():
        return value
    return value.translate(_FORMAT_DROPPED)


def normalise(value: str) -> str:
    """`value` as a reader sees it: compatibility forms folded (NFKC: full-width ｅｖｉｌ．ｃｏｍ is
    evil.com) and invisible format characters (zero-width space, bidi marks...) dropped, so
    nothing hides between the characters of a word."""
    value = unicodedata.normalize("NFKC", value)
    kept, start = [], 0
    for match in _EMOJI_FORMAT.finditer(value):
        kept += [without_format(value[start : match.start()]), match.group()]
        start = match.end()
    return "".join([*kept, without_format(value[start:])])


@functools.cache
def _grapheme_cluster() -> regex.Pattern[str]:
    # Imported on first use: most texts are never shortened, and importing regex takes ~11 ms
    # that every cold start of the recover function (a benchmark target) would pay otherwise.
    import regex

    return regex.compile(r"\X")


def graphemes(value: str) -> Iterator[str]:
    """Split into user-perceived characters: Unicode's extended grapheme clusters (UAX #29), in
    linear time (regex's \\X)."""
    return (match.group() for match in _grapheme_cluster().finditer(value))


def shorten(value: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """`value` cut to at most `limit` code points at a character boundary, ending in `ellipsis`."""
    if len(value) <= limit:
        return value
    budget = limit - len(ellipsis)
    kept = ""
    for cluster in graphemes(value):
        if len(kept) + len(cluster) > budget:
            break
        kept += cluster
    return kept.rstrip(" ,.;:-–—") + ellipsis if budget >= 0 else ""
