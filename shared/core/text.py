"""Unicode-safe cleaning and shortening of customer-supplied strings."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
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
