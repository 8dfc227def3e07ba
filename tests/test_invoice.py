"""Reading an invoice and its customer out of Stripe's JSON."""

import pytest

from shared.core.invoice import (
    FALLBACK_DESCRIPTION,
    Customer,
    Invoice,
    describe_line,
    parse_invoice,
)
from standins import builders


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1 × Pro plan (at $25.00 / month)", "Pro plan"),
        ("3 × Seats (at €10.00 / month)", "Seats"),
        ("2 x Team (at $5.00 / week)", "Team"),
        ("Pro plan (Tier 1 at $0.00 / month)", "Pro plan"),
        ("Remaining time on 2 × Pro plan after 25 Nov 2026", "Pro plan"),
        ("Unused time on Pro plan after 25 Nov 2026", "Pro plan"),
        ("Consulting (March)", "Consulting (March)"),
        ("  Setup\tfee ", "Setup fee"),
        (None, FALLBACK_DESCRIPTION),
        ("", FALLBACK_DESCRIPTION),
    ],
)
def test_line_description_loses_quantity_and_price(line, expected):
    assert describe_line(line) == expected


def test_expanded_invoice_gives_what_the_text_needs():
    customer = builders.customer(name="Jane Doe", phone="+1 415 555 0100", country="US")
    data = builders.invoice(customer["id"], attempt_count=2)
    data["customer"] = customer
    invoice = parse_invoice(data)
    assert invoice.id == data["id"]
    assert invoice.why_not_open is None
    assert invoice.attempt_count == 2
    assert invoice.description == "Pro plan"
    assert invoice.hosted_invoice_url == data["hosted_invoice_url"]
    assert (invoice.customer.id, invoice.customer.name, invoice.customer.phone) == (
        customer["id"],
        "Jane Doe",
        "+1 415 555 0100",
    )
    assert invoice.customer.country == "US"
    assert (invoice.amount_remaining, invoice.currency) == (2500, "usd")
    assert invoice.customer.preferred_locales == ()


def test_preferred_locales_are_read_in_order():
    data = builders.invoice("cus_x")
    data["customer"] = builders.customer(preferred_locales=["es-419", "en"])
    assert parse_invoice(data).customer.preferred_locales == ("es-419", "en")


@pytest.mark.parametrize(
    ("changes", "is_open"),
    [
        ({"status": "paid", "amount_remaining": 0}, False),
        ({"status": "void"}, False),
        ({"status": "uncollectible"}, False),
        ({"status": "open", "amount_remaining": 0}, False),
        ({"status": "open"}, True),
    ],
)
def test_only_open_invoices_with_money_due_are_open_for_payment(changes, is_open):
    data = {**builders.invoice("cus_x"), **changes}
    assert (parse_invoice(data).why_not_open is None) is is_open


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": "paid", "amount_remaining": 0}, "invoice is paid"),
        ({"status": "void"}, "invoice is void"),
        ({"status": "open", "amount_remaining": 0}, "nothing is due"),
        ({"status": "open"}, None),
    ],
)
def test_why_an_invoice_is_not_open(changes, why):
    data = {**builders.invoice("cus_x"), **changes}
    assert parse_invoice(data).why_not_open == why


def test_deleted_customer_has_no_contact():
    data = builders.invoice("cus_gone")
    data["customer"] = {"id": "cus_gone", "object": "customer", "deleted": True}
    customer = parse_invoice(data).customer
    assert customer.deleted
    assert customer.phone is None


def test_invoice_without_lines_uses_fallback_description():
    data = builders.invoice("cus_x", description_line=None)
    assert parse_invoice(data).description == FALLBACK_DESCRIPTION


def test_expanded_subscription_gives_its_id_and_status():
    customer = builders.customer()
    subscription = builders.subscription(customer, status="canceled")
    data = builders.invoice(customer, subscription=subscription)
    data["parent"]["subscription_details"]["subscription"] = subscription
    invoice = parse_invoice(data)
    assert (invoice.subscription_id, invoice.subscription_status) == (
        subscription["id"],
        "canceled",
    )
    assert invoice.subscription_ended


@pytest.mark.parametrize(
    ("subscription", "status", "ended"),
    [
        ("sub_1NotExpanded", None, False),  # an id only: nothing known, the text goes out
        (None, None, False),  # a one-off invoice
    ],
)
def test_unexpanded_or_missing_subscription_never_stops_a_text(subscription, status, ended):
    data = builders.invoice(builders.customer(), subscription=subscription)
    invoice = parse_invoice(data)
    assert (invoice.subscription_id, invoice.subscription_status) == (subscription, status)
    assert invoice.subscription_ended is ended


@pytest.mark.parametrize(
    ("status", "ended"),
    [
        ("active", False),
        ("past_due", False),
        ("unpaid", False),
        ("trialing", False),
        ("paused", False),
        ("incomplete", False),
        ("incomplete_expired", True),
        ("canceled", True),
    ],
)
def test_only_canceled_or_expired_subscriptions_have_ended(status, ended):
    data = builders.invoice(builders.customer())
    data["parent"]["subscription_details"]["subscription"] = {"id": "sub_1", "status": status}
    assert parse_invoice(data).subscription_ended is ended


def test_the_address_state_is_read_with_its_address():
    data = builders.invoice("cus_x")
    data["customer"] = builders.customer(country="US")
    data["customer"]["address"]["state"] = " CA "
    data["customer_address"] = {"country": "MX", "state": "Jalisco"}
    customer = parse_invoice(data).customer
    assert (customer.country, customer.state) == ("US", "CA")


@pytest.mark.parametrize("state", [None, "", "  ", 7])
def test_a_missing_or_blank_state_is_none(state):
    data = builders.invoice("cus_x")
    data["customer"] = builders.customer(country="US")
    data["customer"]["address"]["state"] = state
    assert parse_invoice(data).customer.state is None


def test_a_customer_without_an_address_takes_the_invoices_state_with_its_country():
    data = builders.invoice("cus_x")
    data["customer"] = builders.customer(country=None)
    data["customer_address"] = {"country": "MX", "state": "Jalisco"}
    customer = parse_invoice(data).customer
    assert (customer.country, customer.state) == ("MX", "Jalisco")


def test_an_invoice_billed_to_a_customer_account_gives_its_own_address_state():
    data = builders.invoice("cus_x")
    data["customer"] = None
    data["customer_address"] = {"country": "CA", "state": "NU"}
    customer = parse_invoice(data).customer
    assert (customer.country, customer.state) == ("CA", "NU")


NOBODY = Customer(None, "", None, None)


def bare(**fields):
    """An invoice with as little as Stripe may send: its id, and `fields`."""
    return {"id": "in_1", **fields}


def read(**fields):
    """The invoice `bare` reads as: what is absent read as empty, but for `fields`."""
    defaults = {
        "id": "in_1",
        "status": "",
        "amount_remaining": 0,
        "currency": "",
        "hosted_invoice_url": None,
        "attempt_count": 0,
        "livemode": False,
        "description": FALLBACK_DESCRIPTION,
        "customer": NOBODY,
    }
    return Invoice(**{**defaults, **fields})


# The fields read as Stripe sends them.
AS_SENT = {
    "status": "open",
    "amount_remaining": 900,
    "currency": "eur",
    "hosted_invoice_url": "https://invoice.stripe.com/i/x",
    "attempt_count": 3,
    "livemode": True,
}


@pytest.mark.parametrize(
    ("case", "data", "invoice"),
    [
        ("nothing but an id", bare(), read()),
        ("as sent", bare(**AS_SENT), read(**AS_SENT)),
        # Without amount_remaining (an older API version): what is due.
        (
            "amount due only",
            bare(amount_remaining=None, amount_due=700),
            read(amount_remaining=700),
        ),
        ("an empty link", bare(hosted_invoice_url=""), read()),
        (
            "a subscription that is not an id",
            bare(parent={"subscription_details": {"subscription": 5}}),
            read(),
        ),
        (
            "a subscription status that is not a word",
            bare(parent={"subscription_details": {"subscription": {"id": 5, "status": 5}}}),
            read(),
        ),
        # Billed to an Accounts v2 customer account: the invoice's own copies of its contact.
        (
            "a customer account",
            bare(
                customer=None,
                customer_account="acct_1",
                customer_name=" Ana\tLima ",
                customer_phone="+14155550100",
                customer_address={"country": "CA", "state": "NU"},
            ),
            read(customer=Customer("acct_1", "Ana Lima", "+14155550100", "CA", state="NU")),
        ),
        (
            "a bare customer id",
            bare(customer="cus_1"),
            read(customer=Customer("cus_1", "", None, None)),
        ),
        (
            "a deleted customer",
            bare(customer={"id": "cus_1", "deleted": True, "name": "Ana", "phone": "+1"}),
            read(customer=Customer("cus_1", "", None, None, deleted=True)),
        ),
        # The customer's address gives the state when it has one, even without its country.
        (
            "a customer's state, the invoice's country",
            bare(
                customer={"id": "cus_1", "name": "Ana", "address": {"state": "CA"}},
                customer_address={"country": "MX", "state": "Jalisco"},
            ),
            read(customer=Customer("cus_1", "Ana", None, "MX", state="CA")),
        ),
    ],
)
def test_an_invoice_is_read_field_by_field(case, data, invoice):
    assert parse_invoice(data) == invoice
