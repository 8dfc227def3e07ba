"""The customer-text rules as they read before they were made fast (b3d864b), character by
character in Python: the reference the property tests hold the fast ones to, answer for answer,
over `hostile_texts`. Only the walks are kept here; the patterns and word lists are the
product's own."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from hypothesis import strategies as st

from shared.core import linq_events, message, text
from shared.core.message import MIN_PHONE_DIGITS
from shared.core.text import CJK

_SPACE_RUNS = re.compile(r"\s+")
_JOINERS = frozenset(message._JOINING)
_WORD = re.compile(rf"(?:(?!{CJK})[^\W_])+|(?:(?={CJK})[^\W_])+")


def clean(value: str | None) -> str:
    if not value:
        return ""
    value = text._BIDI_CONTROLS.sub("", value)
    value = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return _SPACE_RUNS.sub(" ", value).strip()


def _without_format(value: str) -> str:
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf")


def normalise(value: str) -> str:
    value = unicodedata.normalize("NFKC", value)
    kept, start = [], 0
    for match in text._EMOJI_FORMAT.finditer(value):
        kept += [_without_format(value[start : match.start()]), match.group()]
        start = match.end()
    return "".join([*kept, _without_format(value[start:])])


def skeleton(value: str) -> str:
    if value.isascii():
        return value
    return message._IDEOGRAPHIC_DOT.sub(".", "".join(map(message._as_read, value)))


def without_links(value: str) -> str:
    words = [(word, skeleton(word)) for word in clean(normalise(value)).split()]
    return " ".join(without_numbers(words))


def without_numbers(words: list[tuple[str, str]]) -> list[str]:
    kept: list[tuple[str, tuple[int, int] | None]] = []
    cutting = False
    for word, read in words:
        if cutting and (goes_on := message._RUN_GOES_ON.match(read)) is not None:
            cutting = _still_open(read[goes_on.end() :])
            continue
        cutting = False
        if (uri := message._CALL_URI.search(read)) is not None:
            cutting = _still_open(read[uri.end() :].lstrip("+"))
            continue
        if message._LINK_SHAPE.search(read):
            continue
        # (digits, start): the run still open, as the product's _Run.
        run = kept[-1][1] if kept else None
        for i, ch in enumerate(read):
            if ch.isdecimal():
                run = (run[0] + 1, run[1]) if run else (1, len(kept))
                if run[0] >= MIN_PHONE_DIGITS:
                    del kept[run[1] :]
                    cutting = _still_open(read[i + 1 :])
                    break
            elif ch not in _JOINERS:
                run = None
        else:
            kept.append((word, run))
    return [word for word, _ in kept]


def _still_open(rest: str) -> bool:
    return all(ch.isdecimal() or ch in _JOINERS for ch in rest)


def is_opt_out(value: str) -> bool:
    readable = _readable(value)
    if linq_events._REACTION.match(readable):
        return False
    for sentence in linq_events._SENTENCE.split(readable):
        words = _WORD.findall(sentence)
        if any(linq_events._STRONG.fullmatch(word) for word in words):
            return True
        if linq_events._PHRASES.search(" ".join(words)) or _aimed(words):
            return True
    return _spelled(_WORD.findall(readable))


def _spelled(words: Sequence[str]) -> bool:
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) > 1 and linq_events._STRONG.fullmatch("".join(run)):
            return True
        run = []
    return False


def _aimed(words: Sequence[str]) -> bool:
    weak_words, filler, messaging = linq_events._WEAK, linq_events._FILLER, linq_events._MESSAGING
    weak = [i for i, word in enumerate(words) if word in weak_words]
    if not weak:
        return False
    if all(word in weak_words or word in filler for word in words):
        return True
    for i in weak:
        if any(word in messaging for word in words[i + 1 : i + 1 + linq_events._AIM]):
            return True
    last = max((i for i, word in enumerate(words) if word not in filler), default=-1)
    return last in weak and any(word in messaging for word in words[:last])


def _readable(value: str) -> str:
    normal = unicodedata.normalize("NFKC", value)
    if not normal.isprintable():
        normal = "".join(c for c in normal if unicodedata.category(c) != "Cf")
    return normal.casefold()


# What hides in customer text: controls, white space, format characters (bidi marks, zero-width,
# tags), marks, emoji sequences, Chinese and Japanese.
_ODDITIES = [
    *"\x00\t\n\r\x1f\x7f\x85\x9f\u00a0\u1680\u2028\u3000",
    *"\u00ad\u061c\u200b\u200c\u200d\u200e\u202a\u202e\u2066\u2069\ufeff\U000e0001",
    *"\U000e0020\U000e0067\U000e007e\U000e007f\U0001f3f4\ufe0f\U0001f469\U0001f4bb\u2764",
    *"\u0301\u0308\u20e3\u0903\u3099",
    *"回复退订止めて연간プラン\uff21\uff53",
]
# What the link and number rules single out: digits of every kind, what joins them, dots and
# schemes.
_NUMBERS_AND_LINKS = [
    *"0159\u0661\u0668\u06f5\u0966\uff11\u277d\u24ff\u2460\u00b2\U0001d7d8\u2189",
    *message._JOINING,
    *".,;:!?\"'\u3002\uff61\uff0e\u2024",
    *["8005550199", "555", "12", "tel:", "sms:", "TEL:+", "facetime-audio:", "www", "://"],
    *["(dot)", "[.]", "com", "x"],
]
# Words of replies, and letters to spell a STOP word with.
_WORDS = [
    *["pay", "the", "month", "me", "no", "more", "don't", "opt", "out", "wrong", "number"],
    *[
        "remove",
        "leave",
        "alone",
        "x",
        "s",
        "t",
        "o",
        "p",
        "a",
        "l",
        "ｓ",
        "liked \u201c",
        "\u201d",
    ],
]
# What opts out on its own.
_STOPS = [
    *["stop", "STOPALL", "sssttop", "unsubscribed", "revoke", "optout", "s t o p", "S.T.O.P"],
    *["s t o p a l l", "cancel these texts", "these messages need to end", "quit texting me"],
    *["end please", "no more texts", "opt me out", "do not contact"],
]
_ANY = st.characters() | st.characters(codec="utf-8")


def _texts(pieces: st.SearchStrategy[str], glue: list[str]) -> st.SearchStrategy[str]:
    """Texts of up to 40 `pieces`, each with one of `glue` after it."""
    return st.lists(st.tuples(pieces, st.sampled_from(glue)).map("".join), max_size=40).map("".join)


# Anything, with all that hides in customer text.
hostile_texts = _texts(
    st.sampled_from(_ODDITIES)
    | st.sampled_from(_NUMBERS_AND_LINKS)
    | st.sampled_from(_WORDS + _STOPS)
    | _ANY,
    ["", "", " ", ", ", "\n", "\u200b"],
)
# Numbers and links, written every way, between words: digit runs of every length, whole or in
# pieces, with what joins them or ends them.
numbers_and_links = _texts(
    st.sampled_from(["1", "12", "555", "0199", "8005550199", "\u0668", "\u277d", "\uff11"])
    | st.sampled_from(["-", ".", "(", "/", "\u30fb", "\u2800", "x", "tel:", "sms:+", "a.b"])
    | st.sampled_from(_NUMBERS_AND_LINKS)
    | st.sampled_from(_ODDITIES),
    ["", "", " ", " ", " ", "\n", "\u00a0", "\u0301", "\u200b"],
)
# Replies: sentences of the STOP rule's words, their letters, and punctuation.
replies = _texts(
    st.sampled_from(sorted(linq_events._WEAK))
    | st.sampled_from(sorted(linq_events._MESSAGING))
    | st.sampled_from(sorted(linq_events._FILLER))
    | st.sampled_from(_WORDS)
    | st.sampled_from(_STOPS + _ODDITIES),
    [*" " * 24, "", ", ", ". ", "! ", "\n", "_", "\u200b", "\u2019", "\U0001f600", "退订"],
)
