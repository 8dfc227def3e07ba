"""What reaches the team's Slack and the logs of a customer's words: no number whole however it
is written, nothing formatted, and the masking's work bounded by what it shows, not by what the
customer sent."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.linq import LinqClient
from shared.adapters.stripe_gateway import StripeGateway
from shared.core import errors
from shared.core import quote as quote_module
from shared.core.errors import (
    MAX_VENDOR_MESSAGE,
    PermanentError,
    RecoveryError,
    RetryableError,
    vendor_message,
)
from shared.core.quote import MARGIN, MAX_QUOTE, RAW_WINDOW, quote
from standins import LINQ_TOKEN, STRIPE_TEST_KEY, builders
from tests.harness import SENDER

REPO = Path(__file__).resolve().parents[1]
MEGABYTE = 1 << 20
PHONE = "+14155550100"

# (how the customer writes it, the chat's region, its national digits)
NUMBERS = [
    ("call4155550199now", "US", "4155550199"),
    ("415-555-0199x", "US", "4155550199"),
    ("+1\u2009415\u2009555\u20090199", "US", "4155550199"),  # thin spaces
    ("+1\u202f415\u202f555\u202f0199", "US", "4155550199"),  # narrow no-break spaces
    ("+1\u2007415\u2007555\u20070199", "US", "4155550199"),  # figure spaces
    ("+1\u3000415\u3000555\u30000199", "US", "4155550199"),  # ideographic spaces
    ("+1\u205f415\u205f555\u205f0199", "US", "4155550199"),  # medium mathematical spaces
    ("415\u200b555\u200b0199", "US", "4155550199"),  # zero-width spaces
    ("4 1 5 5 5 5 0 1 9 9", "US", "4155550199"),
    ("(415)   555  -  0199", "US", "4155550199"),
    ("415/555/0199", "US", "4155550199"),
    ("415,555,0199", "US", "4155550199"),
    ("４１５５５５０１９９", "US", "4155550199"),  # full-width
    ("٤١٥٥٥٥٠١٩٩", "US", "4155550199"),  # Arabic-Indic
    ("४१५५५५०१९९", "US", "4155550199"),  # Devanagari
    ("④①⑤⑤⑤⑤⓪①⑨⑨", "US", "4155550199"),  # circled
    ("4\ufe0f\u20e31\ufe0f\u20e35\ufe0f\u20e3 555 0199", "US", "4155550199"),  # keycaps
    ("4\u03321\u03325\u0332 5\u03325\u03325\u0332 0199", "US", "4155550199"),  # underlined
    ("tel:+14155550199", "US", "4155550199"),
    ("07911 123456", "US", "7911123456"),  # a UK mobile quoted on a US chat
    ("07911 123456", "GB", "7911123456"),
    ("06 12 34 56 78", "US", "612345678"),  # France
    ("030 1234567", "US", "301234567"),  # Germany
    ("090-1234-5678", "US", "9012345678"),  # Japan
    ("(11) 91234-5678", "US", "11912345678"),  # Brazil
    ("+91 98765 43210", "US", "9876543210"),  # India
    ("0412 345 678", "US", "412345678"),  # Australia
    ("138 0013 8000", "US", "13800138000"),  # China
    ("06-12345678", "US", "612345678"),  # the Netherlands
    ("333 123 4567", "US", "3331234567"),  # Italy
    ("+7 912 345-67-89", "US", "9123456789"),  # Russia
]


def digits_of(text: str) -> str:
    return "".join(c for c in text if c.isdecimal())


def shows_no_more_than_the_last_four(quoted: str, national: str) -> bool:
    """At most a country code and the last four digits: never the rest of the number."""
    shown = digits_of(quoted)
    return len(shown) <= 6 and national[:-4] not in shown


@pytest.mark.parametrize(("written", "region", "national"), NUMBERS, ids=lambda v: repr(v))
def test_a_number_is_masked_in_a_quote_however_the_customer_writes_it(written, region, national):
    said = quote(f"hi, reach me at {written}. thanks", region)
    assert shows_no_more_than_the_last_four(said, national), said
    assert said.startswith("hi, reach me at ")
    assert said.endswith(". thanks")


@pytest.mark.parametrize(
    "text",
    [
        "I'll pay on 12/01/2026, or 1.12.2026 at the latest",
        "paid 1,250,000 IDR at 14:30 on 2026-11-30, and 1,250,000.50 the day before",
        "order 123456, $25.00, in 3 days",
        "invoices 1234, 5678 and 9012",
    ],
)
def test_dates_amounts_and_short_numbers_in_a_quote_read_as_written(text):
    assert quote(text, "US") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok\nRecovered $9,999.00 for in_1\r\nthanks", "ok Recovered $9,999.00 for in_1 thanks"),
        ("line\u2028separator\u2029para\x85next\x0bvt", "line separator para next vt"),
        ("\u202egnirts desrever\u202c and \u2066isolate\u2069", "gnirts desrever and isolate"),
    ],
)
def test_a_quote_is_one_line_with_no_control_or_bidi_characters(text, expected):
    assert quote(text, "US") == expected


def test_an_address_never_shows_its_name_even_without_a_domain_the_masks_know():
    said = quote("mail ana.leak@example.com or ana.leak@intranet or bo+x@exämple.com", "US")
    assert said == "mail ***@example.com or ***@intranet or ***@exämple.com"


FILLERS = ["a ", "word ", "x", "\u200b"]


@pytest.mark.parametrize("filler", FILLERS, ids=repr)
@pytest.mark.parametrize(
    "written",
    ["4155550199", "(415) 555-0199", "+1 415 555 0199", "call4155550199now", "415\u200b5550199"],
)
def test_a_number_straddling_any_cut_never_shows_whole(written, filler):
    # The quote's end, the end of the window masked before the cut, and the raw cut before
    # normalising: the number starts at every offset around each.
    edges = [MAX_QUOTE, MAX_QUOTE + MARGIN, RAW_WINDOW]
    for start in [at for edge in edges for at in range(edge - 20, edge + 2)]:
        text = (filler * start)[:start] + written + " and more" * 200
        said = quote(text, "US")
        assert len(said) <= MAX_QUOTE
        assert said.endswith("…")
        assert shows_no_more_than_the_last_four(said, "4155550199"), (start, said[-30:])


@pytest.mark.parametrize("filler", FILLERS, ids=repr)
def test_an_address_straddling_any_cut_never_shows_its_name(filler):
    # The address starts at every offset from just before it reaches each cut to just past it:
    # anywhere else it lies whole on one side of every cut. A filler is kept by normalising
    # (the cuts after it are at the same offsets) or dropped whole (only the raw cut is met).
    address = "ana.leak@example.com"
    edges = [MAX_QUOTE, MAX_QUOTE + MARGIN, RAW_WINDOW]
    for start in [at for edge in edges for at in range(edge - len(address) - 2, edge + 2)]:
        text = (filler * start)[:start] + address + " and more" * 200
        said = quote(text, "US")
        assert not any(name in said for name in ("ana", "leak")), (start, said[-30:])


HOSTILE = {
    "a.": "a." * (MEGABYTE // 2),
    "digits and separators": "1-" * (MEGABYTE // 2),
    "digits and spaces": "1 " * (MEGABYTE // 2),
    "@": "@" * MEGABYTE,
    "a@": "a@" * (MEGABYTE // 2),
    "+1": "+1" * (MEGABYTE // 2),
    "(1": "(1" * (MEGABYTE // 2),
    "a domain that never ends": "x@" + "a." * (MEGABYTE // 2),
    "keys": "sk_test_" * (MEGABYTE // 8),
    "bearer and tabs": "Bearer" + "\t" * MEGABYTE,
    "zero-width spaces": "\u200b" * MEGABYTE,
    "line breaks": "\n" * MEGABYTE,
}


@pytest.mark.parametrize("shape", HOSTILE)
def test_a_megabyte_reply_is_masked_through_a_window_of_the_quotes_size(shape, monkeypatch):
    # The work the masking does is counted in the characters it is handed: a quote's worth,
    # whatever the reply's length.
    seen = count_masked(monkeypatch, quote_module)
    said = quote(HOSTILE[shape], "US")
    assert seen
    assert max(seen) <= MAX_QUOTE + MARGIN
    assert len(said) <= MAX_QUOTE


@pytest.mark.parametrize("shape", HOSTILE)
def test_a_megabyte_vendor_message_is_masked_through_a_window_of_its_bound(shape, monkeypatch):
    seen = count_masked(monkeypatch, errors)
    said = vendor_message(HOSTILE[shape], {"message": {"parts": [{"value": "x" * 400}]}})
    assert seen
    assert max(seen) <= 4 * MAX_VENDOR_MESSAGE
    assert len(said) <= MAX_VENDOR_MESSAGE


@pytest.mark.integration
def test_the_log_mask_of_a_megabyte_of_hostile_text_runs_in_linear_time():
    # A log line is masked whole (a traceback, a vendor's answer): every pattern must read its
    # input once. A guard, not a measure: each shape takes about a second or less here (run
    # with -s to see the times); a pattern that rescans from every position (the e-mail
    # pattern of d8fd7b6 reads a megabyte of `a.` for tens of minutes) runs far past the limit.
    script = textwrap.dedent(
        """
        import time
        from shared.core.log import redact
        from tests.test_masking import HOSTILE
        for name, text in HOSTILE.items():
            started = time.perf_counter()
            redact(text)
            print(f"{name!r}: {time.perf_counter() - started:.3f} s", flush=True)
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as stopped:
        pytest.fail(f"still masking after {stopped.timeout} s; done so far:\n{stopped.stdout}")
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-2000:]


def count_masked(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """The lengths of the texts `module` hands to the masking, as it goes."""
    seen: list[int] = []
    masking = module.redact

    def counting(text: str, region: str = "US") -> str:
        seen.append(len(text))
        return masking(text, region)

    monkeypatch.setattr(module, "redact", counting)
    return seen


# --- through the product: a reply heard from Linq reaches the team's Slack ---------------------


def texted(pipeline: Any, phone: str = PHONE) -> None:
    """A customer texted, with Slack on, and both deliveries heard."""
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice(builders.customer(phone=phone))
    assert pipeline.result(invoice)["action"] == "sent"
    pipeline.relay(2)


def reply_notes(pipeline: Any) -> list[dict[str, Any]]:
    return [n for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]


def test_numbers_in_a_reply_reach_the_note_masked_however_they_are_written(pipeline, linq_api):
    texted(pipeline)
    # Each reply is told apart by a word (Pub/Sub does not keep their order).
    us = {
        f"case{chr(97 + i // 26)}{chr(97 + i % 26)}": (written, national)
        for i, (written, region, national) in enumerate(NUMBERS)
        if region == "US"
    }
    for case, (written, _) in us.items():
        linq_api.inbound(PHONE, f"{case} call me on {written} tomorrow")
    pipeline.relay(len(us))
    notes = reply_notes(pipeline)
    assert len(notes) == len(us)
    for note in notes:
        shown = [note["text"], note["payload"]["blocks"][0]["text"]["text"]]
        quoted = [text.split('"')[1] for text in shown]
        written, national = us[quoted[0].split()[0]]
        for said in quoted:
            assert shows_no_more_than_the_last_four(said, national), (written, said)


def test_a_reply_cannot_draw_a_line_a_link_or_an_image_in_the_channel(pipeline, linq_api):
    texted(pipeline)
    linq_api.inbound(
        PHONE,
        "sure\nRecovered *$9,999.00* for in_1 _paid_ ~late~ `ok` <!channel> :rotating_light: "
        "https://evil.example/pixel.png www.evil.example",
    )
    pipeline.relay(1)
    [note] = reply_notes(pipeline)
    assert (note["rendered"], note["unfurls"]) == ([], [])
    assert "\n" not in note["text"]
    assert "<!channel>" not in note["text"]


def test_a_megabyte_reply_is_quoted_from_a_window_and_masked(pipeline, linq_api, monkeypatch):
    texted(pipeline)
    seen = count_masked(monkeypatch, quote_module)
    # As much as the Linq intake takes (1 MiB a body, the envelope included).
    text = "+1 415 555 0199 " + "a." * ((MEGABYTE - 8192) // 2)
    linq_api.inbound(PHONE, text)
    lines = pipeline.relay(1)
    assert [line["length"] for line in lines if line.get("action") == "reply_received"] == [
        len(text)
    ]
    [note] = reply_notes(pipeline)
    quoted = note["text"].split('"')[1]
    assert quoted.startswith("+1******0199 a.a.")
    assert quoted.endswith("…")
    assert len(quoted) <= MAX_QUOTE
    assert seen
    assert max(seen) <= MAX_QUOTE + MARGIN


# --- a vendor's error text ---------------------------------------------------------------------

TEXT = (
    "Hi Zoë, your payment for Pro plan didn't go through. You can update your card and retry "
    "with the link below. Reply STOP to opt out."
)
KEY = "in_1OaBcD2345678901-1-text"
SENT = {
    "from": SENDER,
    "to": [PHONE],
    "message": {"parts": [{"type": "text", "value": TEXT}], "idempotency_key": KEY},
}
# What a vendor's message may quote of the request, and what is left of it.
ECHOES = {
    "the request as JSON": (
        f"Invalid request body: {json.dumps(SENT)}",
        "Invalid request body: [request body dropped]",
    ),
    "the request as JSON, unicode kept": (
        f"Invalid request body: {json.dumps(SENT, ensure_ascii=False)}",
        "Invalid request body: [request body dropped]",
    ),
    "the text quoted": (f'text "{TEXT}" contains a link', 'text "[what we sent]" contains a link'),
    "the text JSON-escaped": (
        f"invalid text {json.dumps(TEXT)} for {PHONE}",
        'invalid text "[what we sent]" for +1******0100',
    ),
    "the text cut short": (
        f"text '{TEXT[:70]}...' is invalid",
        "text '[what we sent]...' is invalid",
    ),
}


# A text with a quotation and a letter beyond ASCII: it has three written forms (as sent,
# JSON-escaped, JSON-escaped with its letters kept), and a link inside it.
LINK = "https://invoice.stripe.com/i/acct_1/test_abc"
QUOTED = f'Hi Zoë, your "Pro plan" payment failed: pay at {LINK} now. Reply STOP'


@pytest.mark.parametrize(
    ("case", "message", "request_body", "kept"),
    [
        *((echo, written, SENT, kept) for echo, (written, kept) in ECHOES.items()),
        (
            "escaped, letters kept",
            f"bad text {json.dumps(QUOTED, ensure_ascii=False)}",
            {"text": QUOTED, "link": LINK},
            'bad text "[what we sent]"',
        ),
        # The text, not the link inside it, is what goes: nothing of it is left around the link.
        (
            "a text with its link",
            f"text <{QUOTED}> refused",
            {"link": LINK, "text": QUOTED},
            "text <[what we sent]> refused",
        ),
        (
            "quoted three times",
            f"{TEXT} | {TEXT} | {TEXT}",
            SENT,
            "[what we sent] | [what we sent] | [what we sent]",
        ),
        ("cut at the end of the message", f"text: {TEXT[:40]}", SENT, "text: [what we sent]"),
        # Sixteen characters are content; fifteen are a word of the API's.
        (
            "sixteen characters",
            "bad value 0123456789abcdef",
            {"v": "0123456789abcdef"},
            "bad value [what we sent]",
        ),
        (
            "fifteen characters",
            "bad value 0123456789abcde",
            {"v": "0123456789abcde"},
            "bad value 0123456789abcde",
        ),
        # A key named before the body it quotes is no body.
        (
            "a content key before any object",
            '"value": is required, got {"to": []}',
            None,
            '"value": is required, got {"to": []}',
        ),
        (
            "an object",
            {"at": datetime(2026, 11, 26, tzinfo=UTC)},
            None,
            '{"at": "2026-11-26 00:00:00+00:00"}',
        ),
        # Cut in the window, then cleaned down to less than the limit: still marked as cut.
        ("cut, then shorter", "error" + " " * 1000 + "tail", None, "error…"),
    ],
)
def test_a_vendor_message_keeps_its_words_not_ours(case, message, request_body, kept):
    assert vendor_message(message, request_body) == kept


def linq_fault(status: int, message: Any) -> dict[str, Any]:
    error = {"status": status, "code": 1005 if status < 500 else 3006, "message": message}
    return {"status": status, "body": {"success": False, "error": error, "trace_id": "0" * 32}}


def refused_send(linq_api: Any, status: int, message: Any) -> RecoveryError:
    linq_api.add_fault(r"^/v3/chats$", **linq_fault(status, message))
    with pytest.raises(RecoveryError) as raised:
        LinqClient(LINQ_TOKEN, linq_api.url).create_chat(SENDER, PHONE, TEXT, KEY)
    return raised.value


def everything_said(error: RecoveryError) -> str:
    return f"{error} {error.reason} {json.dumps(error.detail, ensure_ascii=False)}"


@pytest.mark.parametrize("status", [400, 503])
@pytest.mark.parametrize("echo", ECHOES)
def test_a_linq_error_that_quotes_the_request_keeps_its_code_not_the_text(linq_api, echo, status):
    written, kept = ECHOES[echo]
    error = refused_send(linq_api, status, written)
    assert isinstance(error, RetryableError if status >= 500 else PermanentError)
    assert error.detail["code"] == (1005 if status < 500 else 3006)
    assert error.detail["linq_message"] == kept
    assert error.reason == f"Linq {status} (code {error.detail['code']}): {kept}"
    said = everything_said(error)
    for words in ("Zo", "payment for", "update your card", "4155550100", KEY):
        assert words not in said


@pytest.mark.parametrize(
    "message",
    [
        "call +1 415 555 0100 " + "x" * MEGABYTE,
        "a." * (MEGABYTE // 2),
        {"to": ["+14155550100 is not reachable"] * 50_000},
    ],
    ids=["a megabyte of text", "a megabyte of a.", "an object"],
)
def test_a_linq_error_message_is_bounded_and_masked(linq_api, message):
    error = refused_send(linq_api, 400, message)
    assert len(error.detail["linq_message"]) <= errors.MAX_VENDOR_MESSAGE
    assert error.detail["linq_message"].endswith("…")
    assert "4155550100" not in everything_said(error)


def test_a_stripe_error_message_is_bounded_and_masked(stripe_api):
    message = "No such invoice for +1 415 555 0100: " + "x" * MEGABYTE
    stripe_api.add_fault(
        r"^/v1/invoices/", status=404, body={"error": {"message": message, "type": "x"}}
    )
    with pytest.raises(PermanentError) as raised:
        StripeGateway(STRIPE_TEST_KEY, stripe_api.url).invoice("in_1")
    said = everything_said(raised.value)
    assert raised.value.reason.startswith("Stripe: No such invoice for +1******0100: xxx")
    assert len(raised.value.reason) <= len("Stripe: ") + errors.MAX_VENDOR_MESSAGE
    assert "4155550100" not in said


def test_a_refusal_that_quotes_the_text_reaches_no_log_and_no_note(pipeline, linq_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice(builders.customer(phone=PHONE))
    # What the product sends, as Linq would quote it: the request, and the text cut short.
    request = {"to": [PHONE], "message": {"parts": [{"type": "text", "value": "Hi Jane, your"}]}}
    message = f"text 'Hi Jane, your payment for ...' refused; request: {json.dumps(request)}"
    linq_api.add_fault(r"^/v3/chats$", **linq_fault(400, message))
    status, lines = pipeline.run(invoice)
    assert status == 200
    [result] = [line for line in lines if line.get("action") == "failed"]
    kept = "text '[what we sent]...' refused; request: [request body dropped]"
    assert result["reason"] == f"Linq 400 (code 1005): {kept}"
    [note] = pipeline.slack.notes()
    for said in (json.dumps(lines), json.dumps(note["payload"])):
        assert "your payment" not in said
        assert "4155550100" not in said
