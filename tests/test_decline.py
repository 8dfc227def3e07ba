"""Why the invoice's latest payment failed, and whose it is to fix: every decline code Stripe
documents, and the invoice's payments read as Stripe returns them, however odd."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.decline import PROCESSOR_DECLINES, LatestPayment, latest_payment
from standins import builders

# Every card decline code in Stripe's table (docs.stripe.com/declines/codes), by whose it is to
# fix according to its "next steps": attempt the payment again (the processor's, the issuer's),
# or the customer's (another card, a call to their bank, authentication, new details).
PROCESSORS = {
    "approve_with_id",
    "issuer_not_available",
    "processing_error",
    "reenter_transaction",
    "try_again_later",
}
CUSTOMERS = {
    "authentication_required",
    "call_issuer",
    "card_not_supported",
    "card_velocity_exceeded",
    "currency_not_supported",
    "do_not_honor",
    "do_not_try_again",
    "duplicate_transaction",
    "expired_card",
    "fraudulent",
    "generic_decline",
    "incorrect_cvc",
    "incorrect_number",
    "incorrect_pin",
    "incorrect_zip",
    "insufficient_funds",
    "invalid_account",
    "invalid_amount",
    "invalid_cvc",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "invalid_number",
    "invalid_pin",
    "lost_card",
    "merchant_blacklist",
    "new_account_information_available",
    "no_action_taken",
    "not_permitted",
    "offline_pin_required",
    "online_or_offline_pin_required",
    "pickup_card",
    "pin_try_exceeded",
    "restricted_card",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "security_violation",
    "service_not_allowed",
    "stolen_card",
    "stop_payment_order",
    "testmode_decline",
    "transaction_not_allowed",
    "withdrawal_count_exceeded",
    # Error codes Stripe gives without a decline code.
    "card_declined",
    "payment_intent_authentication_failure",
}


def test_the_processors_codes_are_exactly_those_stripe_says_to_attempt_again():
    assert PROCESSOR_DECLINES == PROCESSORS


@pytest.mark.parametrize("code", sorted(PROCESSORS | CUSTOMERS))
def test_every_documented_decline_code_is_the_processors_or_the_customers(code):
    assert LatestPayment("requires_payment_method", code).processor_error is (code in PROCESSORS)


@pytest.mark.parametrize(
    "code", ["", "Processing_Error", "processing_error ", " try_again_later", "processing"]
)
def test_only_the_exact_code_is_the_processors(code):
    assert not LatestPayment("requires_payment_method", code).processor_error


@pytest.mark.parametrize("code", sorted(PROCESSORS))
def test_a_payment_waiting_for_the_customers_confirmation_is_theirs_whatever_the_code(code):
    payment = LatestPayment("requires_action", code)
    assert (payment.needs_action, payment.processor_error) == (True, False)


def invoice_with(*payments: dict[str, Any]) -> dict[str, Any]:
    """An invoice whose `payments` holds these InvoicePayments, as Stripe returns them."""
    invoice = builders.invoice("cus_1", payment=None)
    invoice["payments"]["data"] = list(payments)
    return invoice


def paid_by(intent: Any, created: Any = 1_800_000_000) -> dict[str, Any]:
    """An InvoicePayment whose payment is `intent` (an object, an id, or anything)."""
    payment = builders.invoice_payment("in_1", {"status": "requires_payment_method"}, created=0)
    payment["created"] = created
    payment["payment"]["payment_intent"] = intent
    return payment


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        # A card the issuer declined: the decline code.
        (builders.payment_intent(), LatestPayment("requires_payment_method", "generic_decline")),
        # Stripe's processing_error, expired_card...: a code and no decline code.
        (
            builders.payment_intent(code="processing_error", decline_code=None),
            LatestPayment("requires_payment_method", "processing_error"),
        ),
        # Waiting for 3-D Secure: no error at all.
        (
            builders.payment_intent(status="requires_action", code=None),
            LatestPayment("requires_action", None),
        ),
        # The decline code wins over the code when both are there.
        (
            builders.payment_intent(code="card_declined", decline_code="try_again_later"),
            LatestPayment("requires_payment_method", "try_again_later"),
        ),
        # Not expanded (a read without the path): nothing is known, a plain failure.
        ("pi_3NotExpanded", LatestPayment(None, None)),
        (None, LatestPayment(None, None)),
        # Odd values where strings belong say nothing rather than fail.
        (
            {"status": 7, "last_payment_error": {"decline_code": ["x"], "code": ""}},
            LatestPayment(None, None),
        ),
        (
            {"status": "requires_payment_method", "last_payment_error": "oops"},
            LatestPayment("requires_payment_method", None),
        ),
    ],
)
def test_the_latest_payment_is_read_from_its_payment_intent(intent, expected):
    assert latest_payment(invoice_with(paid_by(intent))) == expected


def test_the_latest_payment_is_the_last_created_wherever_it_is_listed():
    older = paid_by(builders.payment_intent(decline_code="insufficient_funds"), created=100)
    newer = paid_by(builders.payment_intent(code="processing_error", decline_code=None), 200)
    for listed in ((older, newer), (newer, older)):
        assert latest_payment(invoice_with(*listed)).decline_code == "processing_error"


def test_of_payments_made_in_the_same_second_the_first_listed_is_the_latest():
    first = paid_by(builders.payment_intent(decline_code="try_again_later"), created=100)
    second = paid_by(builders.payment_intent(decline_code="lost_card"), created=100)
    assert latest_payment(invoice_with(first, second)).decline_code == "try_again_later"


@pytest.mark.parametrize(
    "payments",
    [
        None,
        "payments",
        {},
        {"data": None},
        {"data": []},
        {"data": "not a list"},
    ],
)
def test_an_invoice_without_a_payment_has_no_latest_payment(payments):
    invoice = builders.invoice("cus_1")
    invoice["payments"] = payments
    assert latest_payment(invoice) is None


def test_an_invoice_read_without_its_payments_has_no_latest_payment():
    invoice = builders.invoice("cus_1")
    del invoice["payments"]
    assert latest_payment(invoice) is None


def test_payments_that_are_not_objects_or_lack_a_date_still_give_one():
    invoice = invoice_with("inpay_1", paid_by(builders.payment_intent(), created=None))
    # The string is no payment; the one without a date is the latest there is.
    assert latest_payment(invoice) == LatestPayment("requires_payment_method", "generic_decline")
