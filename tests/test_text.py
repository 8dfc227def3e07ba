"""Unicode handling of customer data: cleaning, characters never broken in two."""

import pytest
from hypothesis import given, settings

from shared.core import text
from shared.core.text import ELLIPSIS, GSM_ELLIPSIS, clean, graphemes, normalise, shorten
from tests import text_rules_before as before

FAMILY = "👨\u200d👩\u200d👧\u200d👦"
FLAG_FR = "🇫🇷"
THUMB = "👍🏽"
E_ACUTE = "e\u0301"


def test_clusters_keep_emoji_sequences_flags_and_accents_whole():
    assert list(graphemes(f"a{FAMILY}{FLAG_FR}{FLAG_FR}{THUMB}{E_ACUTE}")) == [
        "a",
        FAMILY,
        FLAG_FR,
        FLAG_FR,
        THUMB,
        E_ACUTE,
    ]


def test_thirty_thousand_characters_of_flags_and_joiners_split_whole():
    # The old splitter recounted a cluster's flags at every character: 9.4 s for the first one.
    joined = (FLAG_FR + "\u200d") * 10_000
    assert list(graphemes(joined)) == [FLAG_FR + "\u200d"] * 10_000
    mixed = (FLAG_FR * 3 + FAMILY + "!") * 2_000
    assert len(mixed) == 28_000
    assert list(graphemes(mixed)) == [FLAG_FR, FLAG_FR, FLAG_FR, FAMILY, "!"] * 2_000


def test_clusters_follow_unicode_beyond_emoji():
    # CR LF, a Devanagari conjunct (virama), and Hangul jamo making one syllable.
    assert list(graphemes("\r\nस्ते\u1100\u1161\u11a8")) == ["\r\n", "स्ते", "\u1100\u1161\u11a8"]


@pytest.mark.parametrize("ellipsis", [ELLIPSIS, GSM_ELLIPSIS])
@pytest.mark.parametrize("limit", range(1, 30))
def test_shorten_never_splits_a_character(limit, ellipsis):
    value = f"{FAMILY}{THUMB} שלום עולם {E_ACUTE}{FLAG_FR}" * 3
    short = shorten(value, limit, ellipsis)
    assert len(short) <= limit
    # Too short for the ellipsis itself: nothing.
    assert short.endswith(ellipsis) if limit >= len(ellipsis) else short == ""
    body = short.removesuffix(ellipsis)
    assert "".join(list(graphemes(value))[: len(list(graphemes(body)))]) == body


def test_shorten_leaves_short_values_alone():
    assert shorten("Pro plan", 8) == "Pro plan"


def test_shorten_trims_dangling_punctuation_before_the_ellipsis():
    assert shorten("Pro plan, annual", 10) == "Pro plan…"
    assert shorten("Pro plan, annual", 12, GSM_ELLIPSIS) == "Pro plan..."


def test_clean_collapses_space_and_drops_controls_and_bidi_overrides():
    assert clean(" Jane\n\t\u202eDoe\x00 ") == "Jane Doe"
    assert clean(None) == ""


def test_clean_keeps_right_to_left_text():
    assert clean("  محمد   علي ") == "محمد علي"


@settings(max_examples=300, deadline=None)
@given(value=before.hostile_texts)
def test_clean_and_normalise_answer_as_they_did_character_by_character(value):
    assert clean(value) == before.clean(value)
    assert normalise(value) == before.normalise(value)


def test_a_text_of_many_distinct_characters_grows_no_table_without_end():
    # Ten thousand distinct characters (format characters among them) through the table that
    # remembers what each one is.
    value = "".join(map(chr, range(0x2000, 0x4710)))
    assert normalise(value) == before.normalise(value)
    assert len(text._FORMAT_DROPPED) <= text._REMEMBERED < 10_000
