"""The STOP rule and what Linq's message events say, as pure functions: no emulator, no network.

The sentences are written as customers write them to a dunning text: the ones that must opt out
(the FCC's 2025 consent-revocation order: stop, quit, end, revoke, opt out, cancel, unsubscribe
"by any reasonable means"), and the ones that must reach the team as a reply.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings

from shared.core.entry import EntryKey, Part
from shared.core.linq_events import (
    Delivery,
    LineChange,
    Listing,
    Reply,
    Word,
    failed_part,
    hear_word,
    is_opt_in,
    is_opt_out,
    list_change,
    read_event,
)
from tests import text_rules_before as before

PHONE = "+14155550100"
LINE = "+12025550101"
T0 = dt.datetime(2026, 11, 26, 14, 59, tzinfo=dt.UTC)
T1, T2 = T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)

OPT_OUTS = [
    # The unambiguous words, wherever they stand as a word.
    "Stop texting me",
    "I said STOP",
    "stop please",
    "unsubscribe me",
    "STOP STOP STOP",
    "STOP 🛑",
    "Please stop",
    "STOPALL",
    "STOPPPP",
    "stooop",
    "unsubscribe",
    "Opt me out",
    "opt-out please",
    "I revoke my consent",
    "I paid already, stop messaging me",
    "Please stop sending these messages, I'll pay Friday",
    "Cancel my subscription and stop texting me",
    "why won't you stop",
    # The payment words, as the whole reply or a whole sentence of it.
    "CANCEL",
    "End.",
    "quit!",
    "Cancel please",
    "END IT NOW",
    "cancel. I will pay on my own",
    # ... or aimed at our messages.
    "cancel these texts",
    "quit texting me",
    "end the messages",
    "Can you cancel the text reminders",
    "These texts need to end",
    "quit sending me this",
    # Revoking without a keyword.
    "No more texts",
    "Don't text me again",
    "don’t message me anymore",
    "Do not contact me",
    "Remove me from your list",
    "Take me off this list",
    "Wrong number",
    "leave me alone",
    # The normalisation: full-width letters, invisible characters, quotes, emoji, any case.
    "Ｓｔｏｐ texting me",
    "S\u200bTOP",
    "\u201cSTOP\u201d",
    "stop.",
    "🛑🛑STOP🛑🛑",
    "sToP",
    "S T O P",
    "s.t.o.p.",
    "Liked it, but stop texting me",
    # Chinese and Japanese put no space between words: STOP against them is a word still.
    "回复STOP退订",
    "STOPです",
    "ＳＴＯＰでお願いします",
]

NOT_OPT_OUTS = [
    "I get paid at the end of the month",
    "please don't cancel my account",
    "I quit my job, will pay Friday",
    "I'll pay on Friday",
    "Can you send the link again?",
    "My card was stopped by the bank",
    "Sorry, I didn't mean that",
    "I'll pay by the end of the week",
    "Don't cancel my subscription, I'll pay tomorrow",
    "Why was my payment declined?",
    # A subscription, not our texts: the team reads it and cancels (a canceled subscription is
    # never texted again).
    "I want to cancel my subscription",
    "End of month works for me",
    "I quit smoking, money is tight, will pay next week",
    "Thanks, updated my card",
    "Can I pay at the end of the week?",
    "The bank cancelled my card, new one coming",
    "Please cancel the old invoice and send a new one",
    "Will this ever end? Paying now",
    "Ended up paying with another card",
    "Unstoppable!",
    "Stopover in Denver, will pay when I land",
    "Will pay at end of day",
    "No, text me the link again",
    "Who is this?",
    # Single letters in a row that spell nothing ("i", "m", "a").
    "I'm a bit short, will pay Friday",
    # A word for our messages four words after a weak one is not aimed by it.
    "I quit my job today text me later",
    # Nor one in the sentence before a weak word that ends its own.
    "Got your text. I'll pay it at the end",
    # A reaction sent over SMS quotes the message reacted to: our text's own "Reply STOP".
    "Liked \u201cHi Jane, your payment didn't go through. Reply STOP to opt out.\u201d",
    'Reacted 👍 to "Hi Jane, your payment didn\'t go through. Reply STOP to opt out."',
    "START",
    "",
    # A Japanese reply without the word: the team reads it.
    "来週払います",
]


@pytest.mark.parametrize("text", OPT_OUTS)
def test_a_reply_that_says_stop_opts_out(text):
    assert is_opt_out(text)


@pytest.mark.parametrize("text", NOT_OPT_OUTS)
def test_a_reply_about_the_payment_is_not_an_opt_out(text):
    assert not is_opt_out(text)


def test_the_tables_are_big_enough_to_mean_something():
    assert (len(OPT_OUTS), len(NOT_OPT_OUTS)) >= (20, 20)
    assert not set(OPT_OUTS) & set(NOT_OPT_OUTS)


@settings(max_examples=300, deadline=None)
@given(text=before.replies | before.hostile_texts)
def test_the_stop_rule_answers_as_it_did_sentence_by_sentence(text):
    assert is_opt_out(text) == before.is_opt_out(text)


def test_a_stop_at_the_end_of_256_kib_is_found_and_256_kib_without_one_is_not():
    # Every pattern is linear: 256 KiB of words, or of one repeated letter, is read once, where
    # a pattern that rescanned from each position would run for minutes.
    kib_256 = 1 << 18
    words = "I will pay the end of the month, " * 8_000
    assert len(words) > kib_256
    assert is_opt_out(words + "stop")
    assert not is_opt_out(words)
    assert not is_opt_out("s" * kib_256 + "x")
    assert is_opt_out("a. " * (kib_256 // 3) + "cancel these texts")


@pytest.mark.parametrize(
    "text",
    [
        "START",
        "start",
        "Unstop",
        "UNSTOP.",
        "\uff53\uff54\uff41\uff52\uff54",
        " Start! ",
        "  ¡¡START!!",
    ],
)
def test_only_start_or_unstop_as_the_whole_message_opts_in(text):
    assert is_opt_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sorry, I didn't mean that",
        "Stop texting me",
        "start texting me again",
        "Starting Friday",
        "restart",
        "START STOP",
        "ok",
        "",
    ],
)
def test_anything_else_does_not_opt_in(text):
    assert not is_opt_in(text)


# --- what a message does to the list ---------------------------------------------------------


def reply(*texts: str, **changes: Any) -> Reply:
    fields: dict[str, Any] = {
        "chat_id": "chat_1",
        "from_handle": PHONE,
        "texts": texts,
        "quote": " ".join(texts),
        "sent_at": T1,
        "reconciled": False,
        "group": False,
    }
    return Reply(**{**fields, **changes})


@pytest.mark.parametrize(
    ("message", "word"),
    [
        (reply("Stop texting me"), Word(True, T1)),
        (reply("START"), Word(False, T1)),
        (reply("Sorry, I didn't mean that"), None),
        # Each text part is judged, as well as the whole: "STOP", a photo, "STOP".
        (reply("STOP", "STOP"), Word(True, T1)),
        (reply("CANCEL", "I get paid Friday"), Word(True, T1)),
        (reply("cancel these", "texts"), Word(True, T1)),
        # Parts that say nothing alone and revoke read together.
        (reply("no more", "texts"), Word(True, T1)),
        # Nothing to read: a photo, or a message on a zero-retention line (parts always empty).
        (reply(), None),
        # Linq's mark on the chat opts out, whatever the text says, as of the mark.
        (reply(chat_opted_out=True, marked_at=T0), Word(True, T0)),
        (reply("hello", chat_opted_out=True, marked_at=T0), Word(True, T0)),
        (reply(chat_opted_out=True), Word(True, T1)),
        (reply(chat_opted_out=True, sent_at=None), Word(True, None)),
        # A START after the mark lifts it; with the mark's moment unknown, the opt-out wins.
        (reply("START", chat_opted_out=True, marked_at=T0), Word(False, T1)),
        (reply("START", chat_opted_out=True, marked_at=T2), Word(True, T2)),
        (reply("START", chat_opted_out=True), Word(True, T1)),
        (reply("START", chat_opted_out=True, marked_at=T1), Word(True, T1)),
        # Our own line's message (our text says "Reply STOP to opt out") is nobody's word...
        (reply("Hi Jane. Reply STOP to opt out.", outbound=True), None),
        (reply("START", outbound=True), None),
        # ... but Linq's mark on the chat still counts.
        (reply("Reply STOP", outbound=True, chat_opted_out=True, marked_at=T0), Word(True, T0)),
    ],
)
def test_what_a_message_does_to_the_list(message, word):
    assert list_change(message) == word


@pytest.mark.parametrize(
    ("current", "opted_out", "at", "after"),
    [
        # A STOP puts a new handle on the list; a START from one not on it is kept too, so that
        # an older STOP arriving after it changes nothing.
        (None, True, T1, Listing(True, T1, T1)),
        (None, False, T1, Listing(False, T1, T1)),
        (Listing(False, T2, T2), True, T1, None),
        # A later START lifts; a later STOP keeps the first STOP's date but moves the last word.
        (Listing(True, T0, T0), False, T1, Listing(False, T1, T1)),
        (Listing(True, T0, T0), True, T2, Listing(True, T0, T2)),
        # STOP at T0, STOP at T2, then a START written at T1 arrives last: still opted out.
        (Listing(True, T0, T2), False, T1, None),
        # The same word again (a redelivery) writes nothing; at the same instant, out wins.
        (Listing(True, T1, T1), True, T1, None),
        (Listing(False, T1, T1), True, T1, Listing(True, T1, T1)),
        (Listing(True, T1, T1), False, T1, None),
        # An entry written before `heard_at` existed: its `changed_at` is the last word.
        (Listing(True, T1), False, T0, None),
        (Listing(True, T0), False, T1, Listing(False, T1, T1)),
    ],
)
def test_the_later_word_wins_in_whatever_order_it_arrives(current, opted_out, at, after):
    assert hear_word(current, opted_out, at) == after


TEXT, LINK = Part.TEXT, Part.LINK


@pytest.mark.parametrize(
    ("sent", "part"),
    [
        ([(TEXT, None)], TEXT),
        ([(TEXT, True)], None),
        ([(TEXT, True), (LINK, None)], LINK),
        ([(TEXT, None), (LINK, None)], TEXT),
        ([(TEXT, False), (LINK, None)], LINK),
        ([(TEXT, False), (LINK, False)], TEXT),
        ([(TEXT, True), (LINK, True)], None),
    ],
)
def test_a_failure_without_a_message_id_is_the_part_it_must_have_been(sent, part):
    assert failed_part(sent) == part


# --- reading Linq's events -----------------------------------------------------------------------


def received(*parts: dict[str, Any], **data: Any) -> dict[str, Any]:
    chat = {
        "id": "chat_1",
        "is_group": data.pop("is_group", False),
        "owner_handle": {"handle": LINE, "is_me": True},
        "health_status": data.pop("health", {"status": "HEALTHY"}),
    }
    body = {
        "id": "msg_1",
        "direction": "inbound",
        "sender_handle": {"handle": PHONE, "is_me": False},
        "parts": list(parts),
        "chat": chat,
        "sent_at": T1.isoformat(),
        **data,
    }
    return {"event_type": "message.received", "data": body}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "value": value}


def media(mime: str) -> dict[str, Any]:
    return {"type": "media", "id": "a1", "filename": "x", "mime_type": mime, "size_bytes": 1}


@pytest.mark.parametrize(
    ("parts", "quote"),
    [
        ([text("I'll pay on Friday")], "I'll pay on Friday"),
        ([media("image/heic")], "[photo]"),
        ([text("here"), media("video/mp4"), media("application/pdf")], "here [video] [attachment]"),
        ([{"type": "link", "value": "https://www.example.com/a?b=c"}], "[link: www.example.com]"),
        ([{"type": "link", "value": "not a url"}], "[link]"),
        ([{"type": "imessage_app", "fallback_text": "Shared a song"}], "[card: Shared a song]"),
        ([{"type": "imessage_app"}], "[card]"),
        ([], "[empty]"),
    ],
)
def test_a_reply_is_quoted_with_what_it_has(parts, quote):
    assert read_event(received(*parts)).quote == quote


def test_a_zero_retention_message_has_no_text_and_says_so():
    fact = read_event(received(zero_retention=True))
    assert (fact.texts, fact.quote) == ((), "[not kept: a zero-retention line]")


def test_linq_s_opt_out_mark_is_read_with_its_moment():
    mark = {"status": "OPTED_OUT", "doc_url": "https://docs", "updated_at": T0.isoformat()}
    fact = read_event(received(health=mark))
    assert (fact.chat_opted_out, fact.marked_at) == (True, T0)
    assert read_event(received(health={"status": "AT_RISK"})).chat_opted_out is False
    delivered = {
        "event_type": "message.delivered",
        "data": {"id": "m", "chat": {"health_status": mark}},
    }
    assert (read_event(delivered).chat_opted_out, read_event(delivered).marked_at) == (True, T0)


@pytest.mark.parametrize(
    "data",
    [
        {"direction": "outbound"},
        {"sender_handle": {"handle": PHONE, "is_me": True}},
        {"sender_handle": {"handle": LINE, "is_me": False}},
    ],
    ids=["outbound", "is_me", "our-own-line"],
)
def test_a_message_our_own_line_sent_is_read_as_outbound(data):
    assert read_event(received(text("Reply STOP to opt out"), **data)).outbound
    assert not read_event(received(text("hi"))).outbound


def test_the_text_parts_are_read_apart_and_together():
    fact = read_event(received(text("STOP"), media("image/png"), text("STOP")))
    assert (fact.texts, fact.text, fact.quote) == (
        ("STOP", "STOP"),
        "STOP STOP",
        "STOP [photo] STOP",
    )


def test_a_failure_without_a_message_id_is_read_with_its_chat():
    failed = {"event_type": "message.failed", "data": {"code": 4001, "chat_id": "c1"}}
    assert read_event(failed) == Delivery(False, None, None, None, "c1", 4001, None)


@pytest.mark.parametrize(
    ("data", "fact"),
    [
        (
            {},
            Reply("chat_1", PHONE, ("I'll pay",), "I'll pay", T1, reconciled=False, group=False),
        ),
        (
            {"reconciled_at": T2.isoformat(), "is_group": True},
            Reply("chat_1", PHONE, ("I'll pay",), "I'll pay", T1, reconciled=True, group=True),
        ),
        # Older formats: the sender as a plain string, a moment without its offset (UTC).
        (
            {"sender_handle": PHONE, "sent_at": T1.replace(tzinfo=None).isoformat()},
            Reply("chat_1", PHONE, ("I'll pay",), "I'll pay", T1, reconciled=False, group=False),
        ),
        # A moment with another offset is the same instant.
        (
            {"sent_at": "2026-11-26T15:59:01+01:00"},
            Reply("chat_1", PHONE, ("I'll pay",), "I'll pay", T1, reconciled=False, group=False),
        ),
        # What the SDK allows to be missing or empty reads as unknown.
        (
            {"sender_handle": {"handle": ""}, "sent_at": "Thursday"},
            Reply("chat_1", None, ("I'll pay",), "I'll pay", None, reconciled=False, group=False),
        ),
    ],
)
def test_a_received_message_is_read_into_a_reply(data, fact):
    assert read_event(received(text("I'll pay"), **data)) == fact


@pytest.mark.parametrize(
    ("parts", "texts", "quote"),
    [
        (None, (), "[empty]"),
        ([{"type": "text"}], ("",), "[empty]"),
        ([media("image/heic/1")], (), "[photo]"),
        ([{"type": "sticker"}], (), "[sticker]"),
        ([{"type": "not a word"}, {"type": 5}, {}], (), "[attachment] [attachment] [attachment]"),
    ],
)
def test_parts_of_any_shape_are_read_and_named(parts, texts, quote):
    event = received()
    event["data"]["parts"] = parts
    fact = read_event(event)
    assert (fact.texts, fact.quote) == (texts, quote)


def linq(event_type: str, **data: Any) -> dict[str, Any]:
    return {"event_type": event_type, "data": data}


@pytest.mark.parametrize(
    ("event", "fact"),
    [
        # `message.delivered` is the message itself; the key says which entry and part.
        (
            linq(
                "message.delivered", id="msg_1", idempotency_key="in_1Ab-2-text", chat={"id": "c1"}
            ),
            Delivery(True, EntryKey("in_1Ab", 2), Part.TEXT, "msg_1", "c1", None, None),
        ),
        # `message.failed` names the message and the chat.
        (
            linq(
                "message.failed",
                message_id="msg_2",
                chat_id="c1",
                idempotency_key="in_1Ab-2-link",
                code=4001,
                reason="Carrier rejected",
            ),
            Delivery(
                False, EntryKey("in_1Ab", 2), Part.LINK, "msg_2", "c1", 4001, "Carrier rejected"
            ),
        ),
        # A key the product did not set, a code that is not a number.
        (
            linq("message.failed", message_id="m", idempotency_key="order-7-text", code="4001"),
            Delivery(False, None, None, "m", None, None, None),
        ),
        (
            linq("message.failed", message_id="", id="m", chat_id="", chat={"id": ""}, code=True),
            Delivery(False, None, None, "m", None, None, None),
        ),
        (
            linq("message.failed", message_id=7, chat={"id": "c2"}, code=4001),
            Delivery(False, None, None, None, "c2", 4001, None),
        ),
        (
            linq(
                "phone_number.status_updated",
                phone_number=LINE,
                previous_status="ACTIVE",
                new_status="FLAGGED",
                previous_reputation="HEALTHY",
                new_reputation="AT_RISK",
            ),
            LineChange(LINE, ("ACTIVE", "FLAGGED"), ("HEALTHY", "AT_RISK")),
        ),
        (linq("phone_number.status_updated"), LineChange("", (None, None), (None, None))),
        (linq("chat.created", id="c1"), None),
        ({"data": {"id": "m"}}, None),
    ],
)
def test_linq_s_events_are_read_into_facts(event, fact):
    assert read_event(event) == fact


def test_a_delivery_names_the_entry_and_the_part_of_the_key_the_product_set():
    data = {"id": "m1", "idempotency_key": "in_1Abc-2-link", "chat": {"id": "c1"}}
    fact = read_event({"event_type": "message.delivered", "data": data})
    assert (fact.key, fact.part, fact.message_id, fact.chat_id) == (
        EntryKey("in_1Abc", 2),
        Part.LINK,
        "m1",
        "c1",
    )
    data["idempotency_key"] = "someone-elses-key"
    fact = read_event({"event_type": "message.delivered", "data": data})
    assert (fact.key, fact.part) == (None, None)
