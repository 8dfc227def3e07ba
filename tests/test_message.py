"""The customer's text: literal default output, template checks, length and URL rules."""

import re
import unicodedata
from pathlib import Path

import publicsuffixlist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core import message
from shared.core.errors import ConfigError
from shared.core.log import redact
from shared.core.message import (
    BRANDED_ACTION_TEMPLATE,
    BRANDED_TEMPLATE,
    DEFAULT_ACTION_TEMPLATE,
    DEFAULT_TEMPLATE,
    MAX_TEXT_LENGTH,
    Template,
    Templates,
    contains_url,
    first_name,
    placeholder_values,
    without_links,
)
from shared.core.money import format_amount, largest_amount
from shared.core.sms import GSM_7, UCS_2, SmsCost, sms_cost
from shared.core.text import normalise
from standins import builders, linkrule
from tests import text_rules_before as before

DEFAULT = Template.parse(DEFAULT_TEMPLATE)


def render(name, description, template=DEFAULT, amount="$25.00", brand=None):
    return template.render(placeholder_values(name, description, amount, brand))


def test_default_text_is_exactly_this():
    assert render("Jane Doe", "Pro plan") == (
        "Hi Jane, your payment for Pro plan didn't go through. You can update your card and "
        "retry with the link below. Reply STOP to opt out."
    )


def test_branded_text_is_exactly_this():
    branded = Template.parse(BRANDED_TEMPLATE, brand="Acme")
    assert render("Jane Doe", "Pro plan", branded, brand="Acme") == (
        "Acme: Hi Jane, your $25.00 payment for Pro plan didn't go through. You can update your "
        "card and retry with the link below. Reply STOP to opt out."
    )


def test_custom_template_with_brand_and_amount_is_exactly_this():
    template = Template.parse(
        "{brand} here. {first_name}, {amount} for {description} is unpaid. Reply STOP to opt out.",
        brand="Kōbō Studio",
    )
    text = render("Yuki Sato", "Team plan", template, amount="¥2,500", brand="Kōbō Studio")
    assert text == (
        "Kōbō Studio here. Yuki, ¥2,500 for Team plan is unpaid. Reply STOP to opt out."
    )


def test_3d_secure_text_is_exactly_this():
    action = Template.parse(DEFAULT_ACTION_TEMPLATE, "ACTION_TEMPLATE")
    assert render("Jane Doe", "Pro plan", action) == (
        "Hi Jane, your bank asks you to confirm your $25.00 payment for Pro plan. You can "
        "confirm it with the link below. Reply STOP to opt out."
    )
    branded = Template.parse(BRANDED_ACTION_TEMPLATE, "ACTION_TEMPLATE", brand="Acme")
    assert render("Jane Doe", "Pro plan", branded, brand="Acme") == (
        "Acme: Hi Jane, your bank asks you to confirm your $25.00 payment for Pro plan. You can "
        "confirm it with the link below. Reply STOP to opt out."
    )


@pytest.mark.parametrize("currency", ["idr", "kwd", "usd"])
def test_3d_secure_text_at_its_cap_keeps_brand_amount_and_opt_out(currency):
    brand = "B" * 40
    amount = format_amount(largest_amount(currency), currency)
    template = Template.parse(BRANDED_ACTION_TEMPLATE, "ACTION_TEMPLATE", brand=brand)
    text = render("Bartholomew" * 5, "Enterprise " * 60, template, amount, brand)
    assert len(text) == MAX_TEXT_LENGTH
    assert text.startswith(f"{brand}: Hi Bartholomew")
    assert f"to confirm your {amount} payment for Enterprise" in text
    assert text.endswith(". You can confirm it with the link below. Reply STOP to opt out.")
    assert sms_cost(text) == SmsCost(GSM_7, 3)


def test_brand_and_amount_are_never_shortened():
    brand = "B" * 40
    template = Template.parse(BRANDED_TEMPLATE, brand=brand)
    text = render("Bartholomew" * 5, "Enterprise " * 60, template, "KWD 99,999.999", brand)
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.startswith(f"{brand}: Hi ")
    assert "your KWD 99,999.999 payment for Enterprise" in text
    assert text.endswith("Reply STOP to opt out.")


def test_no_name_greets_there():
    assert render("", "Pro plan").startswith("Hi there, your payment for Pro plan")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Jane Doe", "Jane"), ("  María  José ", "María"), (None, "there"), ("   ", "there")],
)
def test_first_name_is_first_word(name, expected):
    assert first_name(name) == expected


def test_long_description_is_shortened_first_and_stays_gsm7():
    text = render("Jane Doe", "Enterprise " * 60)
    assert text == (
        "Hi Jane, your payment for "
        + "Enterprise " * 17
        + "Enter... didn't go through. You can update your card and retry with the link below. "
        "Reply STOP to opt out."
    )
    assert len(text) == MAX_TEXT_LENGTH
    # Issue 21: it ended in "…", which is not GSM-7: 5 UCS-2 segments on SMS.
    assert sms_cost(text) == SmsCost(GSM_7, 3)


def test_name_is_kept_while_shortening_the_description_suffices():
    filler = "Your payment didn't go through. " * 8
    template = Template.parse("Hi {first_name}! " + filler + "{description}. Reply STOP")
    name = "Bartholomew-Maximilian"
    text = render(name, "Professional plan with extras", template)
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.startswith(f"Hi {name}! ")
    assert text.endswith("Professional plan wit.... Reply STOP")


def test_name_shrinks_when_description_is_already_minimal():
    filler = "Your payment didn't go through. " * 9
    template = Template.parse("{description} {first_name} " + filler + "Reply STOP")
    text = render("Bartholomew" * 3, "Pro plan", template)
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.startswith("... BartholomewBa... Your payment")
    assert text.endswith("Reply STOP")


def test_urls_in_customer_data_never_reach_the_text():
    text = render("https://evil.example.com/x Jane", "Pro (see acme.com/terms, www.acme.io)")
    assert not contains_url(text)
    assert text.startswith("Hi Jane, your payment for Pro (see")


def test_description_made_only_of_a_url_falls_back():
    assert "payment for your subscription" in render("Jane", "https://acme.com")


NO_STOP = (
    "MESSAGE_TEMPLATE must tell the recipient how to opt out with the word STOP (for example "
    "'Reply STOP to opt out.')"
)
A_URL = (
    "MESSAGE_TEMPLATE contains a URL (or a placeholder against a dot and a word, which renders "
    "as one); Linq rejects a URL in the first message of a new chat, and the payment link "
    "follows in its own message"
)


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        (
            "Hi {name}, Reply STOP",
            "MESSAGE_TEMPLATE has an unknown placeholder {name}; allowed: {first_name}, "
            "{description}, {amount}, {brand}",
        ),
        (
            "Pay here {url}. Reply STOP",
            "MESSAGE_TEMPLATE must not contain {url}: the payment link is sent as its own message "
            "after the text, because Linq rejects a URL in the first message",
        ),
        # Checked past escaped braces too.
        (
            "Hi {{friend}}, pay here {url}. Reply STOP",
            "MESSAGE_TEMPLATE must not contain {url}: the payment link is sent as its own message "
            "after the text, because Linq rejects a URL in the first message",
        ),
        ("Hi {first_name}, please pay.", NO_STOP),
        ("Hi {first_name}, reply stop to opt out", NO_STOP),
        # STOP must be a word of the text as it is sent, not of the template's letters.
        ("Hi {first_name}, reply ST{amount}OP", NO_STOP),
        ("Hi, reply {first_name}STOP", NO_STOP),
        # Nor of a word in another script, full-width letters and digits included.
        ("Hi, reply éSTOP", NO_STOP),
        ("Hi, reply STOP1", NO_STOP),
        ("Hi, reply ＳＴＯＰ１", NO_STOP),
        ("Hi, reply STOP_", NO_STOP),
        ("Pay at https://acme.com. Reply STOP", A_URL),
        ("Pay at acme.com. Reply STOP", A_URL),
        ("Pay at pay-here.click. Reply STOP", A_URL),
        ("Pay at ｅｖｉｌ．ｃｏｍ. Reply STOP", A_URL),
        ("Hi {first_name}.com, Reply STOP", A_URL),
        ("Hi {description}.Reply STOP", A_URL),
        (
            "Hi {first_name!r}. Reply STOP",
            "MESSAGE_TEMPLATE: write {first_name} without a format or conversion",
        ),
        (
            "Hi {}. Reply STOP",
            "MESSAGE_TEMPLATE has an unknown placeholder {}; allowed: {first_name}, "
            "{description}, {amount}, {brand}",
        ),
        (
            "Hi {first_name. Reply STOP",
            "MESSAGE_TEMPLATE is not a valid template: expected '}' before end of string",
        ),
        ("   ", "MESSAGE_TEMPLATE is empty; unset it to use the default text"),
        (
            "x" * 330 + " Reply STOP",
            "MESSAGE_TEMPLATE is 341 characters before any customer data (counting BRAND_NAME "
            "and the longest amount); the text must stay under 320",
        ),
    ],
)
def test_bad_templates_are_refused_with_the_reason(template, complaint):
    with pytest.raises(ConfigError) as caught:
        Template.parse(template)
    assert str(caught.value) == complaint


@pytest.mark.parametrize(
    "template",
    [
        # Chinese and Japanese write no space between words: STOP against them is a word.
        "{first_name}様、{amount}のお支払いができませんでした。配信停止はSTOPと返信してください。",
        "{first_name}，您的{amount}付款失败。回复STOP退订。",
        "{first_name}님, {amount} 결제가 실패했습니다. 수신거부 STOP",
        "Hi {first_name}, (STOP) to opt out",
    ],
)
def test_stop_is_a_word_beside_scripts_that_write_no_spaces(template):
    assert Template.parse(template).fields


def test_escaped_braces_are_text():
    template = Template.parse("Hi {{friend}} {first_name}, Reply STOP")
    assert render("Sam Lee", "Pro plan", template) == "Hi {friend} Sam, Reply STOP"


def test_brand_placeholder_needs_brand_name():
    with pytest.raises(ConfigError, match=r"^MESSAGE_TEMPLATE_ES uses \{brand\}: set BRAND_NAME"):
        Template.parse("{brand}: Hola. Responde STOP", "MESSAGE_TEMPLATE_ES")


def test_length_check_counts_the_brand_name():
    words = "x" * 250 + " Reply STOP {brand}"
    assert Template.parse(words, brand="Acme")
    with pytest.raises(ConfigError, match="counting BRAND_NAME and the longest amount"):
        Template.parse(words, brand="A" * 40 + " " + "B" * 40)


def test_length_check_counts_the_longest_amount():
    # 12 characters of " Reply STOP " and 20 for the amount (IDR 9,999,999,999.99): 287 more
    # is the most that fits.
    assert Template.parse("x" * 287 + " Reply STOP {amount}")
    with pytest.raises(ConfigError, match=r"^MESSAGE_TEMPLATE is 320 characters"):
        Template.parse("x" * 288 + " Reply STOP {amount}")


@pytest.mark.parametrize("currency", ["idr", "usd", "kwd", "jpy", "chf"])
@pytest.mark.parametrize("filler", range(280, 300))
def test_no_accepted_template_overflows_with_the_largest_amount(currency, filler):
    try:
        template = Template.parse("{first_name} {description} " + "x" * filler + " {amount} STOP")
    except ConfigError:
        return  # refused at startup: never rendered
    amount = format_amount(largest_amount(currency), currency)
    text = render("Bartholomew", "Pro plan", template, amount)
    assert len(text) <= MAX_TEXT_LENGTH
    assert text.endswith(f" {amount} STOP")


ES = Template.parse("Hola {first_name}. Responde STOP para darte de baja.", "MESSAGE_TEMPLATE_ES")
PT = Template.parse("Olá {first_name}. Responda STOP para sair.", "MESSAGE_TEMPLATE_PT")
TEMPLATES = Templates(DEFAULT, {"es": ES, "pt": PT})


@pytest.mark.parametrize(
    ("locales", "expected"),
    [
        ((), DEFAULT),
        (("es",), ES),
        (("es-419",), ES),
        (("ES-es",), ES),
        (("pt-BR", "es"), PT),
        (("fr-CA", "es"), DEFAULT),
        (("en-US",), DEFAULT),
    ],
)
def test_template_follows_the_first_preferred_locale(locales, expected):
    assert TEMPLATES.for_locales(locales) is expected


def test_custom_template_with_both_placeholders_twice():
    template = Template.parse("{first_name}: {description}/{description}, {first_name}. STOP")
    assert render("Sam Lee", "Pro plan", template) == "Sam: Pro plan/Pro plan, Sam. STOP"


def test_a_value_written_twice_gives_half_the_excess_each_time():
    template = Template.parse("x" * 200 + " {description} / {description} STOP")
    cut = "Enterprise Enterprise Enterprise Enterprise Enterpri..."
    assert render("Sam", "Enterprise " * 10, template) == "x" * 200 + f" {cut} / {cut} STOP"


def test_a_template_without_a_description_shortens_the_name():
    template = Template.parse("x" * 290 + " {first_name} STOP")
    assert render("Bartholomew" * 4, "Pro plan", template) == (
        "x" * 290 + " BartholomewBartholom... STOP"
    )


def test_the_values_are_the_first_name_the_description_the_amount_and_the_brand():
    assert placeholder_values("Jane Doe", "Pro plan", "$25.00", None) == {
        "first_name": "Jane",
        "description": "Pro plan",
        "amount": "$25.00",
        "brand": "",
    }
    assert placeholder_values(None, "https://x.co", "¥2,500", "Acme")["description"] == (
        "your subscription"
    )


@pytest.mark.parametrize(
    "text",
    ["see https://x.co/a", "http://localhost:8080", "www.example.org", "pay.stripe.com", "a.io"],
)
def test_url_detector_flags_urls(text):
    assert contains_url(text)


@pytest.mark.parametrize("text", ["Pro plan v2.0", "J.R. Smith", "Reply STOP to opt out.", "3.5x"])
def test_url_detector_ignores_plain_words(text):
    assert not contains_url(text)


# What survived the old filter of 20 domain endings into the first message.
SURVIVORS = [
    "evil.ru/login",
    "1.2.3.4/pay",
    "mysite.ca",
    "pay-here.click",
    "evil\u200b.com",
    "ｅｖｉｌ．ｃｏｍ",
]


@pytest.mark.parametrize("link", SURVIVORS)
def test_links_beyond_a_short_list_of_endings_never_reach_the_text(link):
    assert contains_url(link)
    assert linkrule.contains_url(link)  # the Linq stand-in would refuse them: 1005
    text = render(f"Jane {link}", f"Pro plan {link} (annual)")
    assert text.startswith("Hi Jane, your payment for Pro plan (annual) didn't go through.")
    assert not contains_url(text)
    assert not linkrule.contains_url(text)


def test_text_is_normalised_and_keeps_emoji_whole():
    family = "👨\u200d👩\u200d👧"
    england = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    text = render(f"Ｊａｎｅ{family}", f"Pro\u200b plan {england}")
    assert text.startswith(f"Hi Jane{family}, your payment for Pro plan {england} didn't")


def top_level_domains() -> list[str]:
    """Every top-level domain in the public suffix list bundled with publicsuffixlist."""
    rules = Path(publicsuffixlist.PSLFILE).read_text(encoding="utf-8").splitlines()
    return sorted(
        {line.split()[0].rsplit(".", 1)[-1] for line in rules if line and not line.startswith("//")}
    )


def test_every_top_level_domain_reads_as_a_link():
    missed = [tld for tld in top_level_domains() if not contains_url(f"Pay at example.{tld}")]
    assert len(top_level_domains()) > 1000
    assert missed == []


hosts = st.builds(
    "{}.{}{}".format,
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}(\.[a-z0-9-]{1,10}){0,2}", fullmatch=True),
    st.sampled_from(top_level_domains()),
    st.sampled_from(["", "/", "/login?x=1", ":8443/pay"]),
) | st.builds("{}.{}.{}.{}/{}".format, *[st.integers(0, 255)] * 4, st.text("pay/", max_size=4))
# How a host can be dressed up: upper case, full width, an invisible character after a label.
disguises = st.sampled_from(
    [
        lambda host: host,
        str.upper,
        lambda host: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in host),
        lambda host: host.replace(".", "\u200b.", 1),
        lambda host: host.replace(".", "\u2060.\u00ad", 1),
        lambda host: f"https://{host}",
        lambda host: host.replace(".", "\u3002"),
        lambda host: host.replace(".", "\uff61"),
        lambda host: host.replace(".", "[.]"),
        lambda host: host.replace(".", "(dot)"),
        lambda host: host.replace(".", ".\u0301"),
    ]
)
customer_text = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    host=hosts,
    disguise=disguises,
    before=customer_text,
    after=customer_text,
    in_name=st.booleans(),
)
def test_a_host_anywhere_in_customer_data_never_survives(host, disguise, before, after, in_name):
    dressed = before + disguise(host) + after
    name, description = (dressed, "Pro plan") if in_name else ("Jane", dressed)
    text = render(name, description)
    assert not contains_url(text)
    assert not linkrule.contains_url(read_as_idna(text))


def read_as_idna(text: str) -> str:
    """`text` with what UTS #46 and a reader take for dots made dots, for the Linq stand-in's
    rule: 。 ｡ ． (but 。 next to Chinese, Japanese or Korean ends a sentence), and a dot in
    brackets; marks dropped."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("M"))
    folded = re.sub(r"[\[({](?:\.|dot)[\])}]", ".", folded, flags=re.IGNORECASE)
    return "".join(
        "."
        if ch == "\u3002" and not is_cjk(folded[i - 1 : i]) and not is_cjk(folded[i + 1 : i + 2])
        else ch
        for i, ch in enumerate(folded)
    )


def is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "") if ch else ""
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC", "HALFWIDTH"))


# --- a number to call ------------------------------------------------------------------------

GREETING = "Hi {}, your payment for Pro plan didn't go through."


@pytest.mark.parametrize(
    ("name", "greeted"),
    [
        # Issue 21: each of these reached the text as written.
        ("tel:+18005550199", "there"),
        ("+18005550199 Smith", "Smith"),
        ("Call-1-800-555-0199", "there"),
        ("(800)555-0199", "there"),
        ("TEL:5550199 Jane", "Jane"),
        ("sms:+18005550199 Jane", "Jane"),
        ("smsto:911 Jane", "Jane"),
        ("facetime:+18005550199 Jane", "Jane"),
        ("Jane(800)555-0199 Doe", "Doe"),
        # Found by Hypothesis: the URI stopped at a space inside its number, the rest survived.
        ("tel:0\u00a0000000:0 Jane", "Jane"),
        ("tel:+1\u2009800\u2009555\u20090199 Jane", "Jane"),
        ("sms:+1 (800) 555-0199 Jane", "Jane"),
        ("tel:８００ ５５５ ０１９９ Jane", "Jane"),
    ],
)
def test_a_phone_number_in_the_name_never_reaches_the_text(name, greeted):
    assert render(name, "Pro plan").startswith(GREETING.format(greeted))


def test_a_phone_number_in_the_description_never_reaches_the_text():
    text = render("Jane", "Pro plan call 1 800 555 0199 today")
    assert text.startswith("Hi Jane, your payment for Pro plan call today didn't go through.")


# Every way log.py's masking reads a number (tests/test_faults.py), and more: Unicode digits and
# spaces, every dash, a middle dot, a slash, brackets, and invisible or blank-looking characters
# between the digits.
PHONE_FORMS = [
    "+1 800 555 0199",
    "+18005550199",
    "1-800-555-0199",
    "(800) 555-0199",
    "800.555.0199",
    "555-0199",
    "5550199",
    "+44 7911 123456",
    "07911 123456",
    "+49 (0)30 1234567",
    "030/1234567",
    "06 12 34 56 78",
    "+91 98765 43210",
    "＋１ ８００ ５５５ ０１９９",  # full width
    "٨٠٠٥٥٥٠١٩٩",  # Arabic-Indic
    "+١ ٨٠٠ ٥٥٥ ٠١٩٩",
    "۸۰۰۵۵۵۰۱۹۹",  # Extended Arabic-Indic (Persian)
    "८००५५५०१९९",  # Devanagari
    "๘๐๐๕๕๕๐๑๙๙",  # Thai
    "𝟖𝟎𝟎𝟓𝟓𝟓𝟎𝟏𝟗𝟗",  # mathematical bold
    "❽⓿⓿-➎➎➎-⓿➊➒➒",  # dingbat digits, which NFKC leaves alone
    "800\u00a0555\u00a00199",  # no-break space
    "800\u2009555\u20090199",  # thin space
    "800\u202f555\u202f0199",  # narrow no-break space
    "800\u3000555\u30000199",  # ideographic space
    "800 \u2003 555 \u2003 0199",
    "800–555–0199",
    "800—555—0199",
    "800−555−0199",
    "800\u2011555\u20110199",  # non-breaking hyphen
    "800·555·0199",
    "800•555•0199",
    "800_555_0199",
    "[800] 555 0199",
    "800\u200b555\u200b0199",  # zero-width space
    "8\u03010\u03010\u0301-555-0199",  # combining marks
    "800\u2800555\u28000199",  # Braille blank
    "800\u3164555\u31640199",  # Hangul filler
]


@pytest.mark.parametrize("number", PHONE_FORMS)
def test_a_phone_number_in_any_form_is_dropped_like_a_host(number):
    assert render(f"{number} Jane", "Pro plan").startswith(GREETING.format("Jane"))
    assert render(f"Call-{number}", "Pro plan").startswith(GREETING.format("there"))
    text = render("Jane", f"Pro plan {number} call us")
    assert text.startswith("Hi Jane, your payment for Pro plan call us didn't go through.")
    assert redact(text) == text  # log.py's masking finds no number in it either


@pytest.mark.parametrize(
    "description",
    [
        "Pro plan 25.00",
        "Top-up $10,000.00",
        "Credit 1,250,000.00",
        "Pro plan v2.0.1",
        "Team (10 seats)",
        "Plan 1 of 12 (2026)",
        "Order 123456",
        "Seats 5 + 5",
        "Room 101, floor 3",
        "2 x 3 months",
        "Nov 26, 2026",
    ],
)
def test_amounts_versions_counts_and_short_numbers_are_kept(description):
    assert without_links(description) == description


@pytest.mark.parametrize(
    ("description", "kept"),
    [
        # Seven digits or more in a phone-like run read as a number to call, whatever they are.
        ("Order 1234567", "Order"),
        ("Membership 2026-11-26", "Membership"),
        ("Top-up 1000000.00", "Top-up"),
    ],
)
def test_seven_digits_or_more_go_even_when_they_are_no_phone_number(description, kept):
    assert without_links(description) == kept


DIGIT_SCRIPTS = [
    "0123456789",
    "０１２３４５６７８９",
    "٠١٢٣٤٥٦٧٨٩",
    "۰۱۲۳۴۵۶۷۸۹",
    "०१२३४५६७८९",
    "০১২৩৪৫৬৭৮৯",
]
JOINERS = [" ", "-", ".", "/", "(", ")", "\u00a0", "\u2009", "\u2013", "\u2212", "\u200b", "\u0301"]


@st.composite
def dressed_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A phone number of 7 to 15 digits as someone might write it, and its digits."""
    digits = draw(st.text("0123456789", min_size=7, max_size=15))
    script = draw(st.sampled_from(DIGIT_SCRIPTS))
    written = ""
    for digit in digits:
        written += script[int(digit)] + draw(st.sampled_from(["", "", *JOINERS]))
    prefix = draw(st.sampled_from(["", "+", "tel:", "sms:", "Call-", "call ", "(", "Call:"]))
    return prefix + written, digits


def digits_of(text: str) -> str:
    """Every decimal digit of `text`, in ASCII, in order."""
    return "".join(str(unicodedata.digit(ch)) for ch in normalise(text) if ch.isdecimal())


@settings(max_examples=300, deadline=None)
@given(number=dressed_numbers(), before=customer_text, after=customer_text, in_name=st.booleans())
def test_a_phone_number_anywhere_in_customer_data_never_survives(number, before, after, in_name):
    written, digits = number
    dressed = f"{before} {written} {after}" if in_name else before + written + after
    name, description = (dressed, "Pro plan") if in_name else ("Jane", dressed)
    assert digits not in digits_of(render(name, description))


@pytest.mark.parametrize(
    ("description", "left"),
    [
        # The halves of a number meet once the link between them is gone: one number.
        ("Pro 800 555 evil.com 0199 plan", "Pro plan"),
        ("Pro 800 555 tel:x 0199 plan", "Pro plan"),
        # A tel: URI goes with the words its number goes on into, and no further.
        ("tel:0\u00a0000000:0", ""),
        ("Pro tel:+1 800 555-0199 plan", "Pro plan"),
        ("Pro tel:+18005550199 2 seats", "Pro seats"),
        ("Pro tel:x 2 seats", "Pro 2 seats"),
        # Or once a word holding another number is gone, whose run the next word goes on with.
        ("Pro 555 x8005550199 0199 plan", "Pro 555 plan"),
        ("Pro 555 x8005550199 zz 0199 plan", "Pro 555 zz 0199 plan"),
        # A control character becomes a space only after the rules read the text.
        ("Pro 800\x00555\x000199 plan", "Pro plan"),
        ("Pro 800\t555\n0199 plan", "Pro plan"),
    ],
)
def test_a_number_is_read_as_the_text_reads_once_words_are_gone(description, left):
    assert without_links(description) == left


SEPARATORS = [
    "evil.com",
    "www.x",
    "tel:x",
    "paypal。com",
    "https://x",
    "x8005550123",
    "1-2-3-4-5-6-7x",
]


@settings(max_examples=300, deadline=None)
@given(
    number=dressed_numbers(),
    cut=st.integers(0, 40),
    separators=st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=3),
    before=customer_text,
    after=customer_text,
)
def test_a_number_split_by_words_that_go_never_survives(number, cut, separators, before, after):
    written, digits = number
    cut = min(cut, len(written))
    dressed = f"{before} {written[:cut]} {' '.join(separators)} {written[cut:]} {after}"
    assert digits not in digits_of(render("Jane", dressed))


def test_a_number_to_call_in_stripe_never_reaches_linq(pipeline, linq_api):
    customer = builders.customer(name="Call-1-800-555-0199 now")
    invoice = pipeline.customer_with_invoice(
        customer, description_line="1 × Pro plan ＋１ (８００) ５５５-０１９９ (at $25.00 / month)"
    )
    assert pipeline.result(invoice)["action"] == "sent"
    text = linq_api.messages()[0]["parts"][0]["value"]
    assert text.startswith("Hi now, your payment for Pro plan didn't go through.")


# --- hosts written with another dot ---------------------------------------------------------------

IDNA_DOTS = ["\u3002", "\uff0e", "\uff61"]


@pytest.mark.parametrize("dot", IDNA_DOTS)
def test_idna_reads_these_as_dots(dot):
    # The premise, from Python's own IDNA codec (RFC 3490: the same three dots as UTS #46).
    assert f"paypal{dot}com".encode("idna") == b"paypal.com"


@pytest.mark.parametrize(
    "host",
    [
        # Issue 21: each of these reached the text.
        "paypal。com",
        "paypal｡com",
        "paypal[.]com",
        "paypal.\u0301com",
        "paypal．com",
        "PAYPAL。COM",
        "www。paypal。com/login",
        "paypal。\u0301com",
        "paypal(.)com",
        "paypal{.}com",
        "paypal[dot]com",
        "paypal(DOT)com",
        "1。2。3。4",
        "1[.]2[.]3[.]4",
        "evil.c\u0301om",
        "paypal.\u20dd\u0489com",
    ],
)
def test_a_host_written_with_another_dot_never_reaches_the_text(host):
    assert render(f"{host} Jane", "Pro plan").startswith(GREETING.format("Jane"))
    text = render("Jane", f"Pro plan {host} annual")
    assert text.startswith("Hi Jane, your payment for Pro plan annual didn't go through.")
    assert contains_url(host)


def test_chinese_and_japanese_keep_their_full_stops():
    # Next to Chinese, Japanese or Korean, 。 ends a sentence: no host.
    sentences = ["お支払い。次回から", "您的订阅。谢谢", "연간。플랜", "年額。", "プラン。Pro版"]
    assert [without_links(sentence) for sentence in sentences] == sentences
    # Between two other characters it is a dot, as IDNA reads it.
    assert without_links("paypal。рф 更新") == "更新"
    template = Template.parse(
        "{first_name}様、{description}のお支払いができませんでした。下のリンクから更新して"
        "ください。Reply STOP to opt out.",
        "MESSAGE_TEMPLATE_JA",
    )
    assert render("山田 太郎", "年間プラン。更新", template).startswith(
        "山田様、年間プラン。更新のお支払いができませんでした。"
    )


def test_a_template_with_a_host_written_with_an_ideographic_dot_is_refused():
    with pytest.raises(ConfigError, match="contains a URL"):
        Template.parse("Pay at paypal。com. Reply STOP")


# --- 256 KiB of hostile input ---------------------------------------------------------------------

# Hundreds of times any name or description Stripe holds, and enough that a rule that rescanned
# from each position would run for minutes.
KIB_256 = 1 << 18


@pytest.mark.parametrize(
    ("hostile", "left"),
    [
        # One run of over a hundred thousand digits: a phone number, gone.
        ("1 " * (KIB_256 // 2), ""),
        ("٨-" * (KIB_256 // 2), ""),
        ("❽(" * (KIB_256 // 2), ""),
        # A digit, then 256 KiB of what may join digits, then no digit.
        ("1" + " -." * (KIB_256 // 3) + "x", "1" + " -." * (KIB_256 // 3) + "x"),
        # Numbers whose words go, each time joining what was on either side.
        ("5 x8005550199 " * (KIB_256 // 14), "5"),
        ("12 y" * (KIB_256 // 4), ("12 y" * (KIB_256 // 4)).strip()),
        # Runs of six digits: each one counted, none enough.
        ("12-34-56 x " * (KIB_256 // 11), ("12-34-56 x " * (KIB_256 // 11)).strip()),
        # Almost hosts at every position.
        ("a." * (KIB_256 // 2), "a." * (KIB_256 // 2)),
        ("a[. " * (KIB_256 // 4), ("a[. " * (KIB_256 // 4)).strip()),
        ("a。" * (KIB_256 // 2), "a。" * (KIB_256 // 2)),
        ("a.\u0301" * (KIB_256 // 3), "a.\u0301" * (KIB_256 // 3)),
        ("\u0301" * KIB_256, "\u0301" * KIB_256),
        ("w" * KIB_256, "w" * KIB_256),
        # Hosts, addresses and URIs from end to end.
        ("a" * KIB_256 + "。com", ""),
        ("1.2.3." * (KIB_256 // 6), ""),
        ("tel:" * (KIB_256 // 4), ""),
        ("\U0001f3f4" + "\U000e0067" * KIB_256, "\U0001f3f4"),
    ],
    ids=lambda value: repr(value[:12]) if isinstance(value, str) else None,
)
def test_256_kib_of_hostile_customer_data_is_read_in_one_pass(hostile, left):
    # Every rule is linear.
    assert without_links(hostile) == left


@settings(max_examples=300, deadline=None)
@given(value=before.numbers_and_links | before.hostile_texts)
def test_the_link_and_number_rules_answer_as_they_did_character_by_character(value):
    assert message._skeleton(value) == before.skeleton(value)
    assert without_links(value) == before.without_links(value)


# --- shortening and what the text costs on SMS ----------------------------------------------------


def test_a_long_first_name_is_cut_with_three_dots_in_a_gsm7_text():
    text = render("Bartholomew" * 5, "Pro plan")
    assert text.startswith("Hi BartholomewBartholomewBartholomewBart..., your payment for Pro plan")
    assert sms_cost(text) == SmsCost(GSM_7, 2)


def test_a_text_that_is_ucs2_anyway_is_cut_with_the_one_character_ellipsis():
    # "ë" is not in GSM 03.38: three dots would cost two characters of the description, and
    # save nothing.
    text = render("Zoë", "Enterprise " * 60)
    assert "Enterprise Enterpri… didn't go through." in text
    assert len(text) == MAX_TEXT_LENGTH
    assert sms_cost(text) == SmsCost(UCS_2, 5)


def test_what_is_cut_away_does_not_decide_the_encoding():
    # The Japanese at the end of the description never reaches the text, so it stays GSM-7.
    text = render("Jane", "Enterprise " * 30 + "日本語")
    assert "Enterprise Enter... didn't go through." in text
    assert sms_cost(text) == SmsCost(GSM_7, 3)


def test_three_dots_give_way_when_only_the_ellipsis_fits():
    # Accepted because "…" fits: the description's shortest is one character.
    template = Template.parse("x" * 312 + " {description} STOP")
    text = render("Jane", "Pro plan", template)
    assert text == "x" * 312 + " … STOP"
    assert len(text) == MAX_TEXT_LENGTH


def test_three_dots_win_in_ucs2_too_when_they_save_a_segment():
    # "…" keeps two more emoji, four more UTF-16 code units, one segment more.
    text = render("Jane", "a" * 176 + "😀" * 200)
    assert text.endswith(
        "😀... didn't go through. You can update your card and retry with the link "
        "below. Reply STOP to opt out."
    )
    assert sms_cost(text) == SmsCost(UCS_2, 5)
    with_ellipsis = text.replace("😀... didn't", "😀😀😀… didn't")
    assert len(with_ellipsis) == MAX_TEXT_LENGTH
    assert sms_cost(with_ellipsis) == SmsCost(UCS_2, 6)


GSM_LETTERS = "ABCXYZabcxyzÄÖÑÜäöñüàèéùìòÇØøÅåÆæßÉΔΦΓΛΩΠΨΣΘΞ"
GSM_OTHERS = "@£$¥_!\"#¤%&'()*+,-./0123456789:;<=>?¡§¿^{}\\[~]|€"
gsm_word = st.text(GSM_LETTERS, min_size=1, max_size=60) | st.text(
    GSM_LETTERS + GSM_OTHERS, min_size=1, max_size=20
)
gsm_words = st.lists(gsm_word, min_size=1, max_size=40).map(" ".join)
gsm_name = st.text(GSM_LETTERS, min_size=30, max_size=60) | gsm_words
gsm_description = st.lists(gsm_word, min_size=25, max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(name=gsm_name, description=gsm_description)
def test_gsm7_customer_data_always_gives_a_gsm7_text(name, description):
    text = render(name, description)
    assert sms_cost(text).encoding == GSM_7
    assert len(text) <= MAX_TEXT_LENGTH
