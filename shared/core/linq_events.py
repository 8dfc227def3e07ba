"""What Linq tells us (webhook events, 2026-02-03 format), read into plain facts; the STOP rule."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from shared.core.entry import EntryKey, Part, read_idempotency_key
from shared.core.text import CJK, without_format

DELIVERED, FAILED = "message.delivered", "message.failed"
RECEIVED, LINE_STATUS = "message.received", "phone_number.status_updated"
SUBSCRIBED_EVENTS = (RECEIVED, FAILED, DELIVERED, LINE_STATUS)
_WORRYING_REPUTATIONS = frozenset({"AT_RISK", "CRITICAL"})

# --- the STOP rule ---------------------------------------------------------------------------
#
# US rules (the FCC's 2025 consent-revocation order under the TCPA): consent may be revoked by any
# reasonable means, and a reply using words such as stop, quit, end, revoke, opt out, cancel or
# unsubscribe revokes it. Linq honours only its keywords as the whole message, in upper case; we
# read sentences, in any case, and where a sentence is ambiguous we take it as an opt-out: a false
# one costs a dunning text, a missed one a lawsuit.
#
# Words that opt out wherever they stand as a word ("stooop" and "STOPPP" are still stop).
_STRONG = re.compile(r"s+t+o+p+(?:all)?|unsubscribed?|unsub|optout|revoked?")
# Words common in a payment conversation ("the end of the month", "don't cancel my account"):
# an opt-out only as the whole of a sentence, or aimed at our messages.
_WEAK = frozenset({"end", "quit", "cancel"})
# What may stand beside a weak word in a sentence that is still only that word ("Cancel please").
_FILLER = frozenset(
    {"please", "pls", "plz", "now", "it", "this", "that", "these", "all", "just", "me"}
    | {"ok", "okay", "thanks", "thank", "you", "thx", "asap", "immediately", "right", "away"}
)
# Words that name our messages: a weak word within three words before one, or ending a sentence
# after one, is aimed at them ("cancel these texts", "these messages need to end").
_MESSAGING = frozenset(
    {"text", "texts", "texting", "txt", "txts", "txting", "sms", "msg", "msgs", "message"}
    | {"messages", "messaging", "notification", "notifications", "alert", "alerts", "reminder"}
    | {"reminders", "contact", "contacting", "sending", "spam", "spamming", "list"}
)
_AIM = 3
# Phrases that revoke consent without a keyword, matched on the sentence's words joined by single
# spaces (no nested repetition: linear in the length of the message).
_PHRASES = re.compile(
    r"\b(?:"
    r"opt(?:ed|ing)? (?:me )?out"
    r"|(?:don t|dont|do not|never|no)(?: more| further| ever)? "
    r"(?:text|texts|texting|txt|sms|message|messages|messaging|msg|msgs|contact)"
    r"|remove me|take me off|leave me alone|wrong (?:number|person)"
    r")\b"
)
# A reaction sent over SMS arrives as text quoting the message reacted to (`Liked “Hi Jane, ...
# Reply STOP to opt out.”`): our own words, not the person's.
_REACTION = re.compile(
    r"(?:liked|loved|disliked|laughed at|emphasi[sz]ed|questioned|reacted \S{1,8} to"
    r"|removed an? \S{1,12} from) [\"\u201c\u201d].*[\"\u201c\u201d]\s*\Z",
    re.DOTALL,
)
# Sentences end at these; a weak word judged alone is judged within its sentence.
_SENTENCE = re.compile(r"[.!?;:,\n\r]+")
# A word: letters and digits of a script that spaces its words, or a run of Chinese or Japanese,
# which do not ("回复STOP退订", "STOPです": STOP is a word of its own); or a line break, which
# `_lines` puts where a sentence ends.
_WORD_OR_END = re.compile(rf"(?:(?!{CJK})[^\W_])+|(?:(?={CJK})[^\W_])+|\n")
# The only words that put a number back on the list: the whole trimmed message (CTIA).
_OPT_IN = frozenset({"start", "unstop"})

# The rules below read a reply once each, in C, as `_lines` writes it: its words joined by single
# spaces, and a line break of its own where a sentence ends (" \n ").
_WORD_STARTS = r"(?<![^ \n])"
_WORD_ENDS = r"(?![^ \n])"
_SENTENCE_ENDS = r"(?= \n|\Z)"


def _any_of(words: frozenset[str]) -> str:
    return "(?:" + "|".join(sorted(map(re.escape, words))) + ")"


_WEAK_WORD, _FILLER_WORD = _any_of(_WEAK), _any_of(_FILLER)
_STRONG_WORD = re.compile(rf"{_WORD_STARTS}(?:{_STRONG.pattern}){_WORD_ENDS}")
# A sentence of weak words and filler only ("Cancel please").
_WEAK_ALONE = re.compile(
    rf"(?:\A|(?<=\n ))(?:{_FILLER_WORD} )*{_WEAK_WORD}"
    rf"(?: (?:{_FILLER_WORD}|{_WEAK_WORD}))*{_SENTENCE_ENDS}"
)
# A weak word with a word for our messages within _AIM words after it ("cancel these texts").
_WEAK_AIMED = re.compile(
    rf"{_WORD_STARTS}{_WEAK_WORD}(?: [^ \n]+){{0,{_AIM - 1}}} {_any_of(_MESSAGING)}{_WORD_ENDS}"
)
# A weak word that ends its sentence but for filler ("these texts need to end").
_WEAK_LAST = re.compile(rf"{_WORD_STARTS}{_WEAK_WORD}(?: {_FILLER_WORD})*{_SENTENCE_ENDS}")
# A run of two or more words of one letter, each, between longer words ("s t o p").
_LETTERS = re.compile(r"(?:\A|(?<=\S\S ))\S(?: \S)+(?= \S\S|\Z)")


def is_opt_out(text: str) -> bool:
    """Whether a reply revokes consent: a STOP word anywhere (`Stop texting me`, `I said STOP`),
    `opt out`, a revoking phrase (`no more texts`, `wrong number`), or END, QUIT or CANCEL as a
    whole sentence or aimed at our messages (`cancel these texts`, `quit texting me`).

    Read as the person meant it: any case, full-width letters as plain ones (NFKC), invisible
    format characters dropped, punctuation and emoji between the words ignored.
    """
    readable = _readable(text)
    if _REACTION.match(readable):
        return False
    lines = _lines(readable)
    return (
        _STRONG_WORD.search(lines) is not None
        or _PHRASES.search(lines) is not None
        or _aimed(lines)
        # The words alone: every sentence's end taken out with the space before it.
        or _spelled(lines.replace(" \n", "").lstrip("\n "))
    )


def is_opt_in(text: str) -> bool:
    """Whether a reply lifts an opt-out: START or UNSTOP as the whole trimmed message (same
    reading as a STOP; punctuation and emoji around the word ignored), nothing else."""
    return _trimmed(_readable(text)) in _OPT_IN


def _lines(readable: str) -> str:
    """`readable` as its words, joined by single spaces, and a line break of its own for the end
    of each sentence."""
    return " ".join(_WORD_OR_END.findall(_SENTENCE.sub("\n", readable)))


def _spelled(words: str) -> bool:
    """A STOP word spelled out letter by letter (`S T O P`, `s.t.o.p`), in `words` joined by
    single spaces."""
    return any(_STRONG.fullmatch(run[::2]) for run in _LETTERS.findall(words))


def _aimed(lines: str) -> bool:
    """A weak word that is the whole of its sentence (but for filler), or aimed at our messages,
    in `lines` (`_lines`)."""
    if _WEAK_ALONE.search(lines) or _WEAK_AIMED.search(lines):
        return True
    # "these texts need to end": the weak word ends the sentence, after a word for our messages.
    for weak in _WEAK_LAST.finditer(lines):
        sentence = lines.rfind("\n", 0, weak.start()) + 1
        if not _MESSAGING.isdisjoint(lines[sentence : weak.start()].split()):
            return True
    return False


def _readable(text: str) -> str:
    """The text as read: NFKC, invisible format characters dropped, case folded."""
    return without_format(unicodedata.normalize("NFKC", text)).casefold()


def _trimmed(text: str) -> str:
    """Whitespace, punctuation and symbols (emoji) cut from both ends."""
    start, end = 0, len(text)
    while start < end and _decoration(text[start]):
        start += 1
    while end > start and _decoration(text[end - 1]):
        end -= 1
    return text[start:end]


def _decoration(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PSZ"


# --- what a message does to our opt-out list -------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A handle's place on our own opt-out list: on it (`opted_out`) since the word written at
    `changed_at`; `heard_at` is the latest word applied, so that an older one arriving late (Linq
    retries, reorders, and recovers history) changes nothing."""

    opted_out: bool
    changed_at: datetime | None
    heard_at: datetime | None = None


def hear_word(current: Listing | None, opted_out: bool, at: datetime) -> Listing | None:
    """The listing after a word for the list (a STOP, or START) written at `at`, or None when
    nothing is to be written: the later word wins, in whatever order the webhooks arrive.

    A START from a handle not on the list is kept too (off the list, as of `at`), so that an older
    STOP arriving after it does not opt the person out. At the same instant, an opt-out wins.
    """
    if current is None:
        return Listing(opted_out, at, at)
    last = current.heard_at or current.changed_at
    if last is not None and (at < last or (at == last and (current.opted_out or not opted_out))):
        return None
    if current.opted_out == opted_out:
        return Listing(opted_out, current.changed_at, at)
    return Listing(opted_out, at, at)


@dataclass(frozen=True)
class Word:
    """A message's word for our opt-out list: out (`opted_out`) or back in, as of `at`."""

    opted_out: bool
    at: datetime | None


def list_change(reply: Reply) -> Word | None:
    """What a message does to our opt-out list, and as of when; None leaves the list as it is.

    A STOP in any text part, or in the text parts read together, opts out as of the message;
    START or UNSTOP as the whole text lifts (unless Linq's mark on the chat is not known to be
    older). Linq's own mark on the chat (`health_status`
    OPTED_OUT) opts out as of the mark, whatever the message says. Nothing else changes the
    list: not a message our own line sent, and not a message without readable text (a
    zero-retention line keeps none; a photo has none).
    """
    if not reply.outbound and reply.texts:
        whole = " ".join(reply.texts)
        if any(is_opt_out(text) for text in reply.texts) or is_opt_out(whole):
            return Word(True, reply.sent_at)
        # A START wins over Linq's mark only when the mark is known to be older.
        mark_older = (
            reply.marked_at is not None
            and reply.sent_at is not None
            and reply.marked_at < reply.sent_at
        )
        if is_opt_in(whole) and (not reply.chat_opted_out or mark_older):
            return Word(False, reply.sent_at)
    if reply.chat_opted_out:
        return Word(True, reply.marked_at or reply.sent_at)
    return None


def failed_part(sent: Sequence[tuple[Part, bool | None]]) -> Part | None:
    """The part a `message.failed` without a message id must be about, given the parts that went
    out into its chat in order, each with Linq's word on it so far (delivered True, failed
    False, or None): the first Linq has said nothing of, else the first not delivered (a
    delivery is final). None when every part that went out was delivered."""
    for wanted in (lambda delivered: delivered is None, lambda delivered: delivered is not True):
        for part, delivered in sent:
            if wanted(delivered):
                return part
    return None


# --- the facts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """Linq's word on one message the product may have sent."""

    delivered: bool
    # The ledger entry and the part, from the idempotency key the product set, when the event
    # carries it (`message.delivered` does; `message.failed` names only the message and chat, and
    # the SDK makes even those optional).
    key: EntryKey | None
    part: Part | None
    # Linq's id of the message.
    message_id: str | None
    chat_id: str | None
    code: int | None
    reason: str | None
    # Linq marks the chat opted out (`message.delivered` carries the chat's health), and since.
    chat_opted_out: bool = False
    marked_at: datetime | None = None


@dataclass(frozen=True)
class Reply:
    """A message in a chat: one a recipient sent, unless `outbound`."""

    chat_id: str | None
    # The handle the message came from (the person's, unless `outbound`).
    from_handle: str | None
    # The text parts, in order: what the STOP rule reads.
    texts: tuple[str, ...]
    # What the team is shown: the text parts, and a word for each other part (`[photo]`).
    quote: str
    sent_at: datetime | None
    # Reconciled history (recovered after the fact): never quoted, only its word for the list.
    reconciled: bool
    # A group chat: never acted upon (Linq never marks a group thread opted out).
    group: bool
    # Sent by our own line (`direction` outbound, or it came from us), whatever the event type.
    outbound: bool = False
    # Linq marks the chat opted out (`chat.health_status`), and since.
    chat_opted_out: bool = False
    marked_at: datetime | None = None

    @property
    def text(self) -> str:
        return " ".join(self.texts)


@dataclass(frozen=True)
class LineChange:
    """A sending line's status or reputation changed; `worrying` when it got worse."""

    line: str
    status: tuple[str | None, str | None]
    reputation: tuple[str | None, str | None]

    @property
    def worrying(self) -> bool:
        flagged = self.status[1] == "FLAGGED" and self.status[0] != "FLAGGED"
        worse = (
            self.reputation[1] in _WORRYING_REPUTATIONS and self.reputation[0] != self.reputation[1]
        )
        return flagged or worse


LinqFact = Delivery | Reply | LineChange


def read_event(event: Mapping[str, Any]) -> LinqFact | None:
    """The fact an event states, or None for an event type the product does not act on."""
    kind, data = event.get("event_type"), _mapping(event.get("data"))
    if kind in (DELIVERED, FAILED):
        keyed = read_idempotency_key(str(data.get("idempotency_key") or ""))
        code = data.get("code")
        marked, marked_at = _mark(_mapping(data.get("chat")))
        # `message.delivered` is a message (`id`, `chat.id`); `message.failed` names them.
        return Delivery(
            delivered=kind == DELIVERED,
            key=keyed[0] if keyed else None,
            part=keyed[1] if keyed else None,
            message_id=_str(data.get("message_id")) or _str(data.get("id")),
            chat_id=_str(data.get("chat_id")) or _str(_mapping(data.get("chat")).get("id")),
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            reason=_str(data.get("reason")),
            chat_opted_out=marked,
            marked_at=marked_at,
        )
    if kind == RECEIVED:
        chat = _mapping(data.get("chat"))
        parts = [p for p in _list(data.get("parts")) if isinstance(p, Mapping)]
        from_handle = data.get("sender_handle")
        own = _handle(chat.get("owner_handle"))
        zero_retention = data.get("zero_retention") is True
        quote = " ".join(_shown(part) for part in parts)
        marked, marked_at = _mark(chat)
        return Reply(
            chat_id=_str(chat.get("id")),
            from_handle=_handle(from_handle),
            texts=tuple(str(p.get("value") or "") for p in parts if p.get("type") == "text"),
            quote=quote or ("[not kept: a zero-retention line]" if zero_retention else "[empty]"),
            sent_at=_moment(data.get("sent_at")),
            reconciled=bool(data.get("reconciled_at")),
            group=bool(chat.get("is_group")),
            outbound=data.get("direction") == "outbound"
            or (isinstance(from_handle, Mapping) and from_handle.get("is_me") is True)
            or (own is not None and own == _handle(from_handle)),
            chat_opted_out=marked,
            marked_at=marked_at,
        )
    if kind == LINE_STATUS:
        return LineChange(
            line=str(data.get("phone_number") or ""),
            status=(_str(data.get("previous_status")), _str(data.get("new_status"))),
            reputation=(_str(data.get("previous_reputation")), _str(data.get("new_reputation"))),
        )
    return None


def _mark(chat: Mapping[str, Any]) -> tuple[bool, datetime | None]:
    """Whether Linq marks the chat opted out, and since when (the moment its status last
    changed: the STOP's)."""
    health = _mapping(chat.get("health_status"))
    if health.get("status") != "OPTED_OUT":
        return False, None
    return True, _moment(health.get("updated_at"))


def _shown(part: Mapping[str, Any]) -> str:
    """One part as the team sees it: a text as written, anything else named in brackets."""
    kind = part.get("type")
    if kind == "text":
        return str(part.get("value") or "")
    if kind == "media":
        mime = str(part.get("mime_type") or "")
        return f"[{_MEDIA.get(mime.split('/', 1)[0], 'attachment')}]"
    if kind == "link":
        host = urlsplit(str(part.get("value") or "")).hostname
        return f"[link: {host}]" if host else "[link]"
    if kind == "imessage_app":
        fallback = _str(part.get("fallback_text"))
        return f"[card: {fallback}]" if fallback else "[card]"
    return f"[{kind if isinstance(kind, str) and kind.isidentifier() else 'attachment'}]"


_MEDIA = {"image": "photo", "video": "video", "audio": "audio"}


def _handle(value: Any) -> str | None:
    """The address of a `sender_handle`: a handle object (`{"handle": "+1...", ...}`) in the
    2026-02-03 format, a plain string in older ones."""
    return _str(value.get("handle")) if isinstance(value, Mapping) else _str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
