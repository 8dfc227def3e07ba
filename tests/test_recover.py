"""The recover function end to end in-process: every action and every error class."""

import json

import pytest

from shared.adapters import linq as linq_module
from shared.core.entry import State
from shared.core.lines import Line
from shared.core.sender import line_order
from standins import builders
from tests.harness import SECOND_SENDER, SENDER, customer_calls, entry, log_lines

PHONE = "+14155550100"
OPENER = (
    "Hi Jane, your payment for Pro plan didn't go through. You can update your card and retry "
    "with the link below. Reply STOP to opt out."
)


def sent_parts(linq_api):
    return [(m["endpoint"], m["parts"]) for m in linq_api.messages()]


# --- sent -------------------------------------------------------------------------------


def test_happy_path_sends_the_text_then_the_link(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    result = pipeline.result(invoice)
    assert result["action"] == "sent"
    assert result["message"] == "sent"
    assert result["invoice_id"] == invoice["id"]
    assert result["customer_id"] == invoice["customer"]
    assert "reason" not in result
    messages = linq_api.messages()
    assert [(m["endpoint"], m["from"], m["to"]) for m in messages] == [
        ("chats", SENDER, [PHONE]),
        ("messages", SENDER, [PHONE]),
    ]
    assert messages[0]["parts"] == [{"type": "text", "value": OPENER}]
    assert messages[1]["parts"] == [{"type": "link", "value": invoice["hosted_invoice_url"]}]
    assert [m["idempotency_key"] for m in messages] == [
        f"{invoice['id']}-2-text",
        f"{invoice['id']}-2-link",
    ]
    assert result["chat_id"] == messages[0]["chat_id"] == messages[1]["chat_id"]


def test_customer_without_name_is_greeted_as_there(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(builders.customer(name=None))
    assert pipeline.result(invoice)["action"] == "sent"
    assert linq_api.messages()[0]["parts"][0]["value"].startswith("Hi there, your payment for")


def test_no_line_description_falls_back_to_your_subscription(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(description_line=None)
    pipeline.result(invoice)
    assert (
        "your payment for your subscription didn't" in linq_api.messages()[0]["parts"][0]["value"]
    )


def test_phone_without_country_code_uses_the_address_country(pipeline, linq_api):
    customer = builders.customer(phone="07911 123456", country="GB")
    assert pipeline.result(pipeline.customer_with_invoice(customer))["action"] == "sent"
    assert linq_api.messages()[0]["to"] == ["+447911123456"]


def test_phone_without_country_code_or_address_uses_the_default_region(pipeline, linq_api):
    pipeline.configure(DEFAULT_PHONE_REGION="FR")
    customer = builders.customer(phone="06 12 34 56 78", country=None)
    assert pipeline.result(pipeline.customer_with_invoice(customer))["action"] == "sent"
    assert linq_api.messages()[0]["to"] == ["+33612345678"]


def test_no_imessage_but_sms_still_sends(pipeline, linq_api):
    linq_api.load({"capabilities": {PHONE: {"imessage": False, "selected_service": "SMS"}}})
    assert pipeline.result(pipeline.customer_with_invoice())["action"] == "sent"
    assert len(linq_api.messages()) == 2


def own_lines(to=PHONE):
    """SENDER and SECOND_SENDER in `to`'s own order (rendezvous hashing)."""
    return [line.number for line in line_order([Line(SENDER, ""), Line(SECOND_SENDER, "")], to)]


def test_configured_sender_is_used(pipeline, linq_api):
    linq_api.load(
        {"phone_numbers": [builders.linq_line(SENDER), builders.linq_line(SECOND_SENDER)]}
    )
    # Not the customer's own line: the configured one wins.
    configured = own_lines()[1]
    pipeline.configure(LINQ_SENDER=configured)
    assert pipeline.result(pipeline.customer_with_invoice())["action"] == "sent"
    assert {m["from"] for m in linq_api.messages()} == {configured}


def test_critical_lines_are_passed_over(pipeline, linq_api):
    first, then = own_lines()
    linq_api.load(
        {
            "phone_numbers": [
                builders.linq_line(first, reputation="CRITICAL"),
                builders.linq_line(then, reputation="AT_RISK"),
            ]
        }
    )
    pipeline.result(pipeline.customer_with_invoice())
    assert {m["from"] for m in linq_api.messages()} == {then}


def test_line_list_is_read_once_per_instance(pipeline, linq_api):
    pipeline.result(pipeline.customer_with_invoice())
    pipeline.result(pipeline.customer_with_invoice())
    reads = [r for r in linq_api.requests() if r["path"] == "/v3/phone_numbers"]
    assert len(reads) == 1


def test_thin_event_takes_the_attempt_from_the_invoice(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(attempt_count=4)
    result = pipeline.result(invoice, attempt_count=None, customer_id=None)
    assert result["action"] == "sent"
    assert result["customer_id"] == invoice["customer"]
    assert linq_api.messages()[0]["idempotency_key"] == f"{invoice['id']}-4-text"


# --- never twice ------------------------------------------------------------------------


def test_same_message_redelivered_after_its_outcome_restates_it_and_sends_nothing(
    pipeline, linq_api
):
    # Pub/Sub redelivers a message whose run wrote its outcome but did not finish: the result
    # line is stated again from the ledger, nothing is sent.
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    first = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    again = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert (again["action"], again["chat_id"], again["attempt"]) == ("sent", first["chat_id"], 1)
    assert len(linq_api.messages()) == 2


def test_second_message_for_the_same_event_is_a_duplicate(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    assert pipeline.result(invoice, event_id=payment.event_id)["action"] == "sent"
    status, lines = pipeline.run(invoice, event_id=payment.event_id)
    assert status == 200
    [line] = lines
    assert (line["message"], line["owner_event"], line["state"]) == (
        "duplicate delivery ignored",
        payment.event_id,
        "done",
    )
    assert "action" not in line
    assert len(linq_api.messages()) == 2


def test_another_event_for_an_attempt_already_texted_is_said_so_not_called_a_duplicate(
    pipeline, linq_api
):
    # A customer's manual retry that failed too: Stripe sends a new event for the same attempt.
    invoice = pipeline.customer_with_invoice()
    assert pipeline.result(invoice, event_id="evt_snapshot")["action"] == "sent"
    result = pipeline.result(invoice, event_id="evt_manual_retry")
    assert (result["action"], result["message"], result["reason"], result["event_id"]) == (
        "skipped:already_texted",
        "skipped: already texted for this attempt",
        "attempt 1 was already texted for event evt_snapshot",
        "evt_manual_retry",
    )
    assert len(linq_api.messages()) == 2


def test_a_failed_run_can_be_taken_over_by_a_later_message(pipeline, linq_api):
    pipeline.configure(LINQ_SENDER="+12025550199")
    invoice = pipeline.customer_with_invoice()
    assert pipeline.result(invoice)["action"] == "failed"
    pipeline.configure(LINQ_SENDER=None)
    assert pipeline.result(invoice)["action"] == "sent"


def test_a_new_failed_attempt_texts_again_in_the_same_chat(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    first = pipeline.result(invoice)
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    second = pipeline.result(invoice, attempt_count=2)
    assert first["chat_id"] == second["chat_id"]
    assert [m["idempotency_key"].split("-", 1)[1] for m in linq_api.messages()] == [
        "1-text",
        "1-link",
        "2-text",
        "2-link",
    ]


def test_crash_between_text_and_link_sends_only_the_link_on_retry(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(r"/messages$", method="POST", status=503)
    payment = pipeline.payment(invoice)
    status, _ = pipeline.run(invoice, message_id="m-1", event_id=payment.event_id)
    assert status == 500
    assert sent_parts(linq_api) == [("chats", [{"type": "text", "value": OPENER}])]
    assert pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)["action"] == "sent"
    assert [endpoint for endpoint, _ in sent_parts(linq_api)] == ["chats", "messages"]


# --- skipped ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("paid", "invoice is paid"),
        ("void", "invoice is void"),
        ("uncollectible", "invoice is uncollectible"),
    ],
)
def test_invoice_no_longer_open_is_skipped(pipeline, linq_api, status, reason):
    invoice = pipeline.customer_with_invoice()
    pipeline.stripe.update_invoice(invoice["id"], {"status": status, "amount_remaining": 0})
    result = pipeline.result(invoice)
    assert (result["action"], result["reason"]) == ("skipped:not_open", reason)
    assert customer_calls(linq_api) == []


@pytest.mark.parametrize("status", ["canceled", "incomplete_expired"])
def test_invoice_of_an_ended_subscription_is_skipped(pipeline, linq_api, status):
    customer = builders.customer()
    subscription = builders.subscription(customer, status=status)
    pipeline.stripe.load({"subscriptions": [subscription]})
    invoice = pipeline.customer_with_invoice(customer, subscription=subscription)
    result = pipeline.result(invoice)
    assert (result["action"], result["message"], result["reason"]) == (
        "skipped:canceled",
        "skipped: subscription canceled",
        f"subscription {subscription['id']} is {status}",
    )
    assert customer_calls(linq_api) == []


@pytest.mark.parametrize("status", ["past_due", "unpaid", "active"])
def test_invoice_of_a_live_subscription_is_texted(pipeline, status):
    customer = builders.customer()
    subscription = builders.subscription(customer, status=status)
    pipeline.stripe.load({"subscriptions": [subscription]})
    invoice = pipeline.customer_with_invoice(customer, subscription=subscription)
    assert pipeline.result(invoice)["action"] == "sent"


def test_one_off_invoice_without_a_subscription_is_texted(pipeline):
    invoice = pipeline.customer_with_invoice(subscription=None)
    assert pipeline.result(invoice)["action"] == "sent"


def test_paid_invoice_of_a_canceled_subscription_is_not_open(pipeline):
    customer = builders.customer()
    subscription = builders.subscription(customer, status="canceled")
    pipeline.stripe.load({"subscriptions": [subscription]})
    invoice = pipeline.customer_with_invoice(customer, subscription=subscription, status="paid")
    assert pipeline.result(invoice)["action"] == "skipped:not_open"


def test_open_invoice_with_nothing_due_is_skipped(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    pipeline.stripe.update_invoice(invoice["id"], {"amount_remaining": 0})
    assert pipeline.result(invoice)["action"] == "skipped:not_open"
    assert customer_calls(linq_api) == []


@pytest.mark.parametrize(
    ("customer", "reason"),
    [
        (builders.customer(phone=None), "no phone on file"),
        (builders.customer(phone="  "), "no phone on file"),
        (builders.customer(deleted=True), "customer was deleted"),
        (builders.customer(phone="12345"), "phone on file is not a valid number"),
        (builders.customer(phone="call me maybe"), "phone on file is not a valid number"),
    ],
)
def test_no_usable_phone_is_skipped(pipeline, linq_api, customer, reason):
    result = pipeline.result(pipeline.customer_with_invoice(customer))
    assert (result["action"], result["message"], result["reason"]) == (
        "skipped:no_phone",
        "skipped: no phone on file",
        reason,
    )
    assert customer_calls(linq_api) == []


def test_code_1005_means_unreachable_only_from_the_capability_check(pipeline, linq_api):
    # On POST /v3/chats the same code is Linq refusing a link in a first message: our fault,
    # not the customer's number, so the run fails with the cause instead of skipping them.
    linq_api.add_fault(
        r"/v3/chats$",
        status=400,
        body={
            "success": False,
            "error": {"status": 400, "code": 1005, "message": "Links are not allowed."},
            "trace_id": "0" * 32,
        },
    )
    result = pipeline.result(pipeline.customer_with_invoice())
    assert result["action"] == "failed"
    assert "Linq 400 (code 1005)" in result["reason"]


def test_no_service_at_all_is_unreachable(pipeline, linq_api):
    linq_api.load({"capabilities": {PHONE: {"imessage": False, "selected_service": None}}})
    result = pipeline.result(pipeline.customer_with_invoice())
    assert (result["action"], result["message"]) == ("skipped:unreachable", "skipped: unreachable")
    assert linq_api.messages() == []


def test_number_refused_by_linq_is_unreachable(pipeline, linq_api):
    linq_api.load({"refused": [PHONE]})
    result = pipeline.result(pipeline.customer_with_invoice())
    assert result["action"] == "skipped:unreachable"
    assert "1005" in result["reason"]
    assert linq_api.messages() == []


def test_opted_out_recipient_is_skipped(pipeline, linq_api):
    linq_api.inbound(PHONE, "STOP")
    result = pipeline.result(pipeline.customer_with_invoice())
    assert (result["action"], result["message"]) == ("skipped:opted_out", "skipped: opted out")
    assert "2024" in result["reason"]
    assert linq_api.messages() == []


# --- failed (acknowledged) --------------------------------------------------------------


def test_open_invoice_without_hosted_url_fails(pipeline, linq_api):
    result = pipeline.result(pipeline.customer_with_invoice(hosted_invoice_url=None))
    assert (result["action"], result["severity"]) == ("failed", "ERROR")
    assert result["reason"] == "open invoice has no hosted_invoice_url to link to"
    assert customer_calls(linq_api) == []


def test_unknown_invoice_fails_once(pipeline, stripe_api):
    invoice = builders.invoice("cus_nobody")
    result = pipeline.result(invoice)
    assert result["action"] == "failed"
    assert "No such invoice" in result["reason"]
    assert len(stripe_api.requests()) == 1


def test_rejected_stripe_key_fails(pipeline):
    pipeline.configure(STRIPE_API_KEY="sk_test_revoked0000")
    result = pipeline.result(pipeline.customer_with_invoice())
    assert result["action"] == "failed"
    assert "Stripe rejected the API key" in result["reason"]


def test_event_mode_must_match_the_key_mode(pipeline, stripe_api):
    invoice = pipeline.customer_with_invoice()
    result = pipeline.result(invoice, livemode=True)
    assert result["action"] == "failed"
    assert "event is live-mode but STRIPE_API_KEY is a test key" in result["reason"]
    assert stripe_api.requests() == []


def test_configured_sender_missing_from_account_fails(pipeline, linq_api):
    pipeline.configure(LINQ_SENDER="+12025550199")
    result = pipeline.result(pipeline.customer_with_invoice())
    assert result["action"] == "failed"
    assert "LINQ_SENDER +1******0199 is not a line on this Linq account" in result["reason"]
    assert linq_api.messages() == []


def test_other_linq_4xx_fails_with_code_and_message(pipeline, linq_api):
    linq_api.load({"blocked": [PHONE]})
    result = pipeline.result(pipeline.customer_with_invoice())
    assert result["action"] == "failed"
    assert result["reason"].startswith("Linq 403 (code 2026): ")


# --- retried (raised) -------------------------------------------------------------------


def retry_line(lines):
    [line] = [entry for entry in lines if entry["message"].startswith("will retry")]
    return line


@pytest.mark.usefixtures("fast_stripe_retries")
# stripe-python retries 5xx twice inside the call (three attempts) but never a 429.
@pytest.mark.parametrize(("status", "attempts"), [(500, 3), (503, 3), (429, 1)])
def test_stripe_outage_or_rate_limit_is_retried(pipeline, stripe_api, linq_api, status, attempts):
    invoice = pipeline.customer_with_invoice()
    stripe_api.add_fault(r"/v1/invoices/", status=status, times=attempts)
    status_code, lines = pipeline.run(invoice)
    assert status_code == 500
    assert [entry for entry in lines if "action" in entry] == []
    assert retry_line(lines)["status"] == status
    assert customer_calls(linq_api) == []
    assert pipeline.result(invoice)["action"] == "sent"


def test_stripe_5xx_is_retried_inside_the_run_first(pipeline, stripe_api, fast_stripe_retries):
    invoice = pipeline.customer_with_invoice()
    stripe_api.add_fault(r"/v1/invoices/", status=500, times=2)
    assert pipeline.result(invoice)["action"] == "sent"
    assert len(stripe_api.requests()) == 3


def test_linq_rate_limit_is_logged_and_retried(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(
        r"/v3/chats$",
        status=429,
        body={
            "success": False,
            "error": {"status": 429, "code": 1007, "message": "Rate limited.", "retry_after": 7},
            "trace_id": "0" * 32,
        },
        headers={"Retry-After": "7"},
    )
    status, lines = pipeline.run(invoice)
    assert status == 500
    line = retry_line(lines)
    assert (line["severity"], line["status"], line["code"], line["retry_after"]) == (
        "ERROR",
        429,
        1007,
        7,
    )
    assert line["linq_message"] == "Rate limited."
    assert linq_api.messages() == []
    assert pipeline.result(invoice)["action"] == "sent"


# The line list is read twice before giving up: ahead of need, then when it is needed.
@pytest.mark.parametrize(
    ("path", "times"),
    [(r"/v3/phone_numbers", 2), (r"/v3/capability", 1), (r"/v3/chats$", 1), (r"/messages$", 1)],
)
def test_linq_5xx_on_any_call_is_retried(pipeline, linq_api, path, times):
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(path, status=503, times=times)
    status, lines = pipeline.run(invoice)
    assert status == 500
    assert retry_line(lines)["status"] == 503
    assert pipeline.result(invoice)["action"] == "sent"
    assert len(linq_api.messages()) == 2


def test_linq_timeout_is_retried(pipeline, linq_api, monkeypatch):
    monkeypatch.setattr(linq_module, "TIMEOUT", (1.0, 0.3))
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(r"/v3/capability", delay_s=1.0)
    status, lines = pipeline.run(invoice)
    assert status == 500
    assert "timed out" in retry_line(lines)["message"]
    assert pipeline.result(invoice)["action"] == "sent"


def test_ineligible_picked_line_falls_over_to_the_next(pipeline, linq_api):
    first, then = own_lines()
    linq_api.load(
        {
            "phone_numbers": [builders.linq_line(SENDER), builders.linq_line(SECOND_SENDER)],
            "ineligible": [first],
        }
    )
    assert pipeline.result(pipeline.customer_with_invoice())["action"] == "sent"
    assert {m["from"] for m in linq_api.messages()} == {then}
    chats = [r["body"]["from"] for r in linq_api.requests() if r["path"] == "/v3/chats"]
    assert chats == [first, then]


def test_ineligible_configured_line_is_retried_later(pipeline, linq_api):
    linq_api.load(
        {
            "phone_numbers": [builders.linq_line(SENDER), builders.linq_line(SECOND_SENDER)],
            "ineligible": [SENDER],
        }
    )
    pipeline.configure(LINQ_SENDER=SENDER)
    invoice = pipeline.customer_with_invoice()
    status, lines = pipeline.run(invoice)
    assert status == 500
    assert retry_line(lines)["code"] == 2027
    linq_api.load({"ineligible": []})
    assert pipeline.result(invoice)["action"] == "sent"
    assert {m["from"] for m in linq_api.messages()} == {SENDER}


def test_a_single_picked_line_ineligible_for_now_is_retried_never_failed(pipeline, linq_api):
    # The line picked automatically, and no other: before, the payment ended `failed` and was
    # acknowledged, lost for good. Now it is retried until the line is eligible again.
    linq_api.load({"phone_numbers": [builders.linq_line(SENDER)], "ineligible": [SENDER]})
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    status, lines = pipeline.run(invoice, "m-1", event_id=payment.event_id)
    assert status == 500
    assert [line for line in lines if "action" in line] == []
    assert retry_line(lines)["message"] == (
        "will retry: no usable Linq line: 1 line(s), 0 CRITICAL, 1 refused as ineligible "
        "(Linq 403, code 2027)"
    )
    assert entry(pipeline, invoice).state is State.ACTIVE
    # The redelivery waits for the line the plan names: Linq's own 2027, retried again.
    status, lines = pipeline.run(invoice, "m-1", event_id=payment.event_id)
    assert (status, retry_line(lines)["code"]) == (500, 2027)
    linq_api.load({"ineligible": []})
    assert pipeline.result(invoice, "m-1", event_id=payment.event_id)["action"] == "sent"
    assert [m["from"] for m in linq_api.messages()] == [SENDER, SENDER]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([], "no usable Linq line: the Linq account has no lines to send from"),
        (
            [builders.linq_line(SENDER, reputation="CRITICAL")],
            "no usable Linq line: 1 line(s), 1 CRITICAL, 0 refused as ineligible "
            "(Linq 403, code 2027)",
        ),
    ],
)
def test_no_usable_line_at_all_is_retried_until_there_is_one(
    pipeline, linq_api, monkeypatch, lines, reason
):
    monkeypatch.setattr(linq_module, "LINES_TTL_SECONDS", 0)
    linq_api.load({"phone_numbers": lines})
    invoice = pipeline.customer_with_invoice()
    status, logged = pipeline.run(invoice, "m-1")
    assert status == 500
    assert [line for line in logged if "action" in line] == []
    assert retry_line(logged)["message"] == f"will retry: {reason}"
    assert linq_api.messages() == []
    linq_api.load({"phone_numbers": [builders.linq_line(SENDER)]})
    assert pipeline.result(invoice, "m-1")["action"] == "sent"
    assert len(linq_api.messages()) == 2


def test_an_unexpected_error_is_one_masked_line_and_a_retry_that_texts_once(
    pipeline, linq_api, capsys, monkeypatch
):
    # A bug or an answer nobody expected, whose text carries the customer's number: one ERROR
    # line with the stack, masked; the run raises for a redelivery, and nothing is lost.
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)

    def broken(*_: object, **__: object) -> None:
        raise KeyError(f"no route to {PHONE}")

    with monkeypatch.context() as patch:
        patch.setattr(linq_module.LinqClient, "create_chat", broken)
        capsys.readouterr()
        assert pipeline.recover(payment, "m-1").status_code == 500
        captured = capsys.readouterr()
    line = retry_line(log_lines(captured.out))
    assert line["severity"] == "ERROR"
    assert line["message"] == "will retry: unexpected KeyError: 'no route to +1******0100'"
    assert "Traceback" in line["stack_trace"]
    assert "+1******0100" in line["stack_trace"]
    assert PHONE not in captured.out + captured.err
    assert [entry for entry in log_lines(captured.out) if "action" in entry] == []
    assert linq_api.messages() == []
    assert pipeline.result(invoice, message_id="m-1")["action"] == "sent"
    assert [m["endpoint"] for m in linq_api.messages()] == ["chats", "messages"]


# --- bad messages and configuration -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("%%%", "not base64"),
        ("bm90IGpzb24=", "not JSON"),
        ("eyJldmVudF9pZCI6ICJldnRfMSJ9", "no invoice_id"),
    ],
)
def test_malformed_message_is_logged_and_acknowledged(pipeline, stripe_api, data, reason):
    pipeline.capsys.readouterr()
    answer = pipeline.push({"data": data, "messageId": "42"})
    assert answer.status_code == 200
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line["severity"] == "ERROR"
    assert line["message"].startswith("malformed message dropped: ")
    assert line["message"].endswith(reason)
    assert stripe_api.requests() == []


def test_missing_configuration_is_named_and_retried(pipeline):
    pipeline.configure(LINQ_API_KEY=None)
    status, lines = pipeline.run(pipeline.customer_with_invoice())
    assert status == 500
    [line] = lines
    assert line["severity"] == "ERROR"
    assert line["message"].startswith("configuration error: LINQ_API_KEY is required")


# --- Slack ------------------------------------------------------------------------------


def test_slack_gets_a_note_without_the_phone_number(pipeline, slack_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{slack_api.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice()
    pipeline.result(invoice)
    [note] = slack_api.notes()
    assert note["text"].startswith(f"Dunning text sent for {invoice['id']} ({invoice['customer']})")
    assert "5550100" not in note["text"]


def test_slack_gets_a_note_on_skips_too(pipeline, slack_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{slack_api.url}/services/T0/B0/X0")
    pipeline.result(pipeline.customer_with_invoice(builders.customer(phone=None)))
    [note] = slack_api.notes()
    assert "skipped:no_phone" in note["text"]
    assert "no phone on file" in note["text"]


def test_slack_failure_never_fails_the_run(pipeline, slack_api, linq_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{slack_api.url}/services/T0/B0/X0")
    slack_api.add_fault("/services/", status=500)
    status, lines = pipeline.run(pipeline.customer_with_invoice())
    assert status == 200
    assert [entry["action"] for entry in lines if "action" in entry] == ["sent"]
    warning = [entry for entry in lines if entry["message"] == "slack note not delivered"]
    assert warning[0]["status"] == 500
    assert len(linq_api.messages()) == 2


def test_result_line_never_holds_the_full_phone_number(pipeline):
    status, lines = pipeline.run(pipeline.customer_with_invoice())
    assert status == 200
    assert "4155550100" not in json.dumps(lines)


def test_phone_numbers_in_vendor_errors_are_masked_in_logs_and_slack(pipeline, linq_api, slack_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{slack_api.url}/services/T0/B0/X0")
    linq_api.inbound(PHONE, "STOP")
    status, lines = pipeline.run(pipeline.customer_with_invoice())
    assert status == 200
    assert "4155550100" not in json.dumps(lines)
    assert "+1******0100" in json.dumps(lines)
    assert "4155550100" not in slack_api.notes()[0]["text"]


# --- invoices without a customer object, Stripe Connect -------------------------------------


def test_invoice_billed_to_a_customer_account_uses_its_own_customer_fields(pipeline, linq_api):
    # Accounts v2: `customer` is null and the invoice's frozen customer_* fields are all there is.
    invoice = pipeline.customer_with_invoice()
    pipeline.stripe.update_invoice(
        invoice["id"],
        {
            "customer": None,
            "customer_account": "acctv2_1Billing",
            "customer_name": "Ana Souza",
            "customer_phone": "07911 123456",
            "customer_address": {"country": "GB"},
        },
    )
    result = pipeline.result(invoice, customer_id=None)
    assert (result["action"], result["customer_id"]) == ("sent", "acctv2_1Billing")
    assert linq_api.messages()[0]["to"] == ["+447911123456"]
    assert linq_api.messages()[0]["parts"][0]["value"].startswith("Hi Ana,")


def test_customer_without_an_address_takes_the_invoices_country_as_phone_region(pipeline, linq_api):
    customer = builders.customer(phone="06 12 34 56 78", country=None)
    invoice = pipeline.customer_with_invoice(customer, customer_address={"country": "FR"})
    assert pipeline.result(invoice)["action"] == "sent"
    assert linq_api.messages()[0]["to"] == ["+33612345678"]


def test_invoice_without_a_status_is_skipped_with_a_reason_that_reads_well(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    pipeline.stripe.update_invoice(invoice["id"], {"status": None})
    result = pipeline.result(invoice)
    assert (result["action"], result["reason"]) == ("skipped:not_open", "invoice has no status")


def test_an_event_of_a_connected_account_reads_the_invoice_on_that_account(pipeline, linq_api):
    customer = builders.customer()
    invoice = builders.invoice(customer)
    pipeline.stripe.load(
        {"accounts": [{"id": "acct_1Connected", "customers": [customer], "invoices": [invoice]}]}
    )
    result = pipeline.result(invoice, account="acct_1Connected")
    assert (result["action"], result["account"]) == ("sent", "acct_1Connected")
    [read] = pipeline.stripe.requests()
    assert read["headers"]["stripe-account"] == "acct_1Connected"
    assert len(linq_api.messages()) == 2


def test_a_connected_accounts_invoice_is_not_the_platforms(pipeline):
    customer = builders.customer()
    invoice = builders.invoice(customer)
    pipeline.stripe.load(
        {"accounts": [{"id": "acct_1Connected", "customers": [customer], "invoices": [invoice]}]}
    )
    result = pipeline.result(invoice)  # no account: read on the platform, where it is not
    assert result["action"] == "failed"
    assert "No such invoice" in result["reason"]
