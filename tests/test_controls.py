"""Operator controls in the recover function, in-process: attempt policy, dry run, brand, amount,
language."""

import pytest

from shared.core.entry import EntryKey
from standins import builders
from tests.harness import SENDER, customer_calls

PHONE = "+14155550100"
SEND_ENDPOINTS = {"POST /v3/chats", "POST /v3/chats/{chat_id}/messages"}
SPANISH = "Hola {first_name}, tu pago de {amount} por {description} no se procesó. Responde STOP."


def texts(linq_api):
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "chats"]


def sends(linq_api):
    """Requests to the two send endpoints: create a chat, add a message to one."""
    return [r for r in linq_api.requests() if r["endpoint"] in SEND_ENDPOINTS]


def recorded(pipeline, invoice, attempt):
    """Whether the ledger holds an entry for the invoice's attempt."""
    return pipeline.ledger.entry(EntryKey(invoice["id"], attempt)) is not None


# --- TEXT_ON_ATTEMPTS -------------------------------------------------------------------


def test_attempt_outside_the_policy_is_skipped_without_a_linq_call(pipeline, linq_api):
    pipeline.configure(TEXT_ON_ATTEMPTS="1,3")
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    result = pipeline.result(invoice)
    assert (result["action"], result["message"], result["reason"]) == (
        "skipped:policy",
        "skipped: attempt not in TEXT_ON_ATTEMPTS",
        "attempt 2 is not in TEXT_ON_ATTEMPTS=1,3",
    )
    assert result["customer_id"] == invoice["customer"]
    assert customer_calls(linq_api) == []


def test_attempts_in_the_policy_are_texted(pipeline, linq_api):
    pipeline.configure(TEXT_ON_ATTEMPTS="1,3")
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    actions = []
    for attempt in (1, 2, 3):
        pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": attempt})
        actions.append(pipeline.result(invoice, attempt_count=attempt)["action"])
    assert actions == ["sent", "skipped:policy", "sent"]
    assert [m["idempotency_key"].split("-", 1)[1] for m in linq_api.messages()] == [
        "1-text",
        "1-link",
        "3-text",
        "3-link",
    ]


def test_thin_event_is_judged_by_the_invoice_attempt(pipeline, linq_api):
    pipeline.configure(TEXT_ON_ATTEMPTS="1")
    invoice = pipeline.customer_with_invoice(attempt_count=4)
    result = pipeline.result(invoice, attempt_count=None, customer_id=None)
    assert (result["action"], result["customer_id"]) == ("skipped:policy", invoice["customer"])
    assert customer_calls(linq_api) == []


def test_policy_skip_is_claimed_so_a_second_message_is_not_run_again(pipeline):
    pipeline.configure(TEXT_ON_ATTEMPTS="1")
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    assert pipeline.result(invoice, event_id="evt_a")["action"] == "skipped:policy"
    status, [line] = pipeline.run(invoice, event_id="evt_b")
    assert (status, line["message"], line["owner_event"], line["state"]) == (
        200,
        "already handled",
        "evt_a",
        "done",
    )


def test_policy_skip_needs_no_readable_invoice(pipeline, stripe_api, fast_stripe_retries):
    pipeline.configure(TEXT_ON_ATTEMPTS="1")
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    stripe_api.add_fault(r"/v1/invoices/", status=503, times=3)
    assert pipeline.result(invoice)["action"] == "skipped:policy"


def test_malformed_policy_is_a_configuration_error_naming_it(pipeline):
    pipeline.configure(TEXT_ON_ATTEMPTS="first and third")
    status, [line] = pipeline.run(pipeline.customer_with_invoice())
    assert status == 500
    assert line["message"].startswith("configuration error: TEXT_ON_ATTEMPTS must be 'all' or")


# --- DRY_RUN ----------------------------------------------------------------------------


def test_dry_run_decides_and_logs_the_text_but_sends_nothing(pipeline, linq_api):
    pipeline.configure(DRY_RUN="true")
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    result = pipeline.result(invoice)
    assert (result["severity"], result["action"], result["message"], result["reason"]) == (
        "INFO",
        "dry_run",
        "dry run: sent",
        "sent",
    )
    assert result["phone"] == "+1******0100"
    assert result["text"] == (
        "Hi Jane, your payment for Pro plan didn't go through. You can update your card and "
        "retry with the link below. Reply STOP to opt out."
    )
    assert "chat_id" not in result
    assert sends(linq_api) == []
    assert {r["endpoint"] for r in linq_api.requests()} == {
        "GET /v3/phone_numbers",
        "POST /v3/capability/check_imessage",
    }


def test_dry_run_leaves_the_ledger_alone_so_the_live_run_still_sends(pipeline, linq_api):
    pipeline.configure(DRY_RUN="true")
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    assert pipeline.result(invoice, event_id="evt_1")["action"] == "dry_run"
    assert pipeline.result(invoice, event_id="evt_1")["action"] == "dry_run"
    assert not recorded(pipeline, invoice, 2)
    pipeline.configure(DRY_RUN=None)
    live = pipeline.result(invoice, event_id="evt_1")
    assert live["action"] == "sent"
    assert len(sends(linq_api)) == 2
    assert recorded(pipeline, invoice, 2)


@pytest.mark.parametrize(
    ("customer", "prepare", "reason"),
    [
        (builders.customer(phone=None), None, "skipped:no_phone: no phone on file"),
        (
            builders.customer(),
            lambda linq: linq.load(
                {"capabilities": {PHONE: {"imessage": False, "selected_service": None}}}
            ),
            "skipped:unreachable: no iMessage, SMS or RCS for the number",
        ),
    ],
)
def test_dry_run_reports_each_would_be_skip(pipeline, linq_api, customer, prepare, reason):
    if prepare:
        prepare(linq_api)
    pipeline.configure(DRY_RUN="yes")
    result = pipeline.result(pipeline.customer_with_invoice(customer))
    assert (result["action"], result["reason"]) == ("dry_run", reason)
    assert result["message"] == f"dry run: {reason.split(': ')[0]}"
    assert sends(linq_api) == []


def test_dry_run_reports_the_policy_and_not_open_skips(pipeline):
    pipeline.configure(DRY_RUN="1", TEXT_ON_ATTEMPTS="1")
    skipped_attempt = pipeline.customer_with_invoice(attempt_count=2)
    paid = pipeline.customer_with_invoice(status="paid")
    assert pipeline.result(skipped_attempt)["reason"] == (
        "skipped:policy: attempt 2 is not in TEXT_ON_ATTEMPTS=1"
    )
    assert pipeline.result(paid)["reason"] == "skipped:not_open: invoice is paid"


def test_dry_run_that_would_fail_is_a_warning_and_leaves_the_ledger_alone(pipeline):
    pipeline.configure(DRY_RUN="true", LINQ_SENDER="+12025550199")
    invoice = pipeline.customer_with_invoice()
    result = pipeline.result(invoice)
    assert (result["severity"], result["action"], result["message"]) == (
        "WARNING",
        "dry_run",
        "dry run: failed",
    )
    assert result["reason"].startswith("failed: LINQ_SENDER +1******0199 is not a line")
    assert not recorded(pipeline, invoice, 1)


def test_dry_run_note_goes_to_slack(pipeline, slack_api):
    pipeline.configure(DRY_RUN="true", SLACK_WEBHOOK_URL=f"{slack_api.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice()
    pipeline.result(invoice)
    [note] = slack_api.notes()
    assert note["text"] == f"Dunning text dry_run for {invoice['id']} ({invoice['customer']}): sent"


# --- BRAND_NAME and {amount} ------------------------------------------------------------


def test_brand_name_alone_gives_the_branded_text(pipeline, linq_api):
    pipeline.configure(BRAND_NAME="Acme")
    pipeline.result(pipeline.customer_with_invoice(amount_due=123450))
    assert texts(linq_api) == [
        "Acme: Hi Jane, your $1,234.50 payment for Pro plan didn't go through. You can update "
        "your card and retry with the link below. Reply STOP to opt out."
    ]


@pytest.mark.parametrize(
    ("amount_due", "currency", "written"),
    [(2500, "usd", "$25.00"), (2500, "jpy", "¥2,500"), (2500, "eur", "€25.00")],
)
def test_amount_is_the_amount_remaining_in_the_invoice_currency(
    pipeline, linq_api, amount_due, currency, written
):
    pipeline.configure(MESSAGE_TEMPLATE="{amount} is due for {description}. Reply STOP")
    pipeline.result(pipeline.customer_with_invoice(amount_due=amount_due, currency=currency))
    assert texts(linq_api) == [f"{written} is due for Pro plan. Reply STOP"]


def test_partly_paid_invoice_shows_what_remains(pipeline, linq_api):
    pipeline.configure(MESSAGE_TEMPLATE="{amount} left. Reply STOP")
    invoice = pipeline.customer_with_invoice(amount_due=5000)
    pipeline.stripe.update_invoice(invoice["id"], {"amount_remaining": 1250})
    pipeline.result(invoice)
    assert texts(linq_api) == ["$12.50 left. Reply STOP"]


# --- MESSAGE_TEMPLATE_<LANG> ------------------------------------------------------------


@pytest.mark.parametrize(
    ("locales", "greeting"),
    [
        (["es-419", "en"], "Hola Jane, tu pago de $25.00"),
        (["fr"], "Hi Jane, your payment"),
        ([], "Hi"),
    ],
)
def test_template_follows_the_customer_language(pipeline, linq_api, locales, greeting):
    pipeline.configure(MESSAGE_TEMPLATE_ES=SPANISH)
    customer = builders.customer(preferred_locales=locales)
    assert pipeline.result(pipeline.customer_with_invoice(customer))["action"] == "sent"
    assert texts(linq_api)[0].startswith(greeting)
    assert {m["from"] for m in linq_api.messages()} == {SENDER}


def test_spanish_text_is_exactly_this(pipeline, linq_api):
    pipeline.configure(MESSAGE_TEMPLATE_ES=SPANISH)
    customer = builders.customer(name="María José", preferred_locales=["es"])
    pipeline.result(pipeline.customer_with_invoice(customer, amount_due=1990, currency="eur"))
    assert texts(linq_api) == [
        "Hola María, tu pago de €19.90 por Pro plan no se procesó. Responde STOP."
    ]


def test_language_template_without_stop_is_an_error_naming_it(pipeline):
    pipeline.configure(MESSAGE_TEMPLATE_ES="Hola {first_name}, paga por favor.")
    status, [line] = pipeline.run(pipeline.customer_with_invoice())
    assert status == 500
    assert line["message"].startswith("configuration error: MESSAGE_TEMPLATE_ES must tell")
