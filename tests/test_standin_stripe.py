"""Tests for the Stripe stand-in, driven by the real stripe-python client over HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import stripe

from standins import builders
from standins.client import StandinClient
from standins.stripe_api import STRIPE_LIVE_KEY, STRIPE_TEST_KEY, StripeStandin
from tests.clock import TestSeconds

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Shrink stripe-python's 0.5 s retry backoff so retry tests stay fast."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)


@pytest.fixture
def server() -> Iterator[StripeStandin]:
    with StripeStandin(api_keys=(STRIPE_TEST_KEY, STRIPE_LIVE_KEY)) as srv:
        yield srv


def make_client(
    server: StripeStandin, key: str = STRIPE_TEST_KEY, timeout: float = 5, retries: int = 2
) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": server.url},
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=retries,
    )


@pytest.fixture
def client(server: StripeStandin) -> stripe.StripeClient:
    return make_client(server)


@pytest.fixture
def seeded(server: StripeStandin) -> tuple[dict, dict]:
    cus = builders.customer(name="Sam Lee", phone="+1 415 555 0199")
    inv = builders.invoice(cus)
    server.load({"customers": [cus], "invoices": [inv]})
    return cus, inv


def test_retrieve_with_expand_inlines_customer(client, seeded):
    cus, inv = seeded
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": ["customer"]})
    assert got.customer.id == cus["id"]
    assert got.customer.phone == "+1 415 555 0199"


def test_retrieve_without_expand_keeps_customer_id(client, seeded):
    cus, inv = seeded
    assert client.v1.invoices.retrieve(inv["id"]).customer == cus["id"]


def test_client_sends_indexed_expand_in_query(server, client, seeded):
    client.v1.invoices.retrieve(seeded[1]["id"], params={"expand": ["customer"]})
    assert server.requests()[-1]["query"] == {"expand[0]": ["customer"]}


def test_bracket_expand_form_is_accepted(server, seeded):
    cus, inv = seeded
    resp = requests.get(
        f"{server.url}/v1/invoices/{inv['id']}?expand[]=customer",
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=5,
    )
    assert resp.json()["customer"]["id"] == cus["id"]


def test_deleted_customer_expands_to_stub(server, client):
    cus = builders.customer(deleted=True)
    inv = builders.invoice(cus["id"])
    server.load({"customers": [cus], "invoices": [inv]})
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": ["customer"]})
    assert got.customer.to_dict() == {"id": cus["id"], "object": "customer", "deleted": True}


def test_deleted_customer_retrieve_returns_stub(server, client):
    cus = builders.customer(deleted=True)
    server.load({"customers": [cus]})
    got = client.v1.customers.retrieve(cus["id"])
    assert got.deleted is True
    assert "phone" not in got


def test_unknown_expand_is_rejected(client, seeded):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.retrieve(seeded[1]["id"], params={"expand": ["subscription"]})
    assert exc.value.http_status == 400
    assert "cannot be expanded (subscription)" in str(exc.value.user_message)


SUBSCRIPTION = "parent.subscription_details.subscription"


def test_retrieve_expands_the_parent_subscription(server, client):
    cus = builders.customer()
    sub = builders.subscription(cus, status="canceled")
    inv = builders.invoice(cus, subscription=sub)
    server.load({"customers": [cus], "subscriptions": [sub], "invoices": [inv]})
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": ["customer", SUBSCRIPTION]})
    expanded = got.parent.subscription_details.subscription
    assert (expanded.id, expanded.status, expanded.customer) == (sub["id"], "canceled", cus["id"])
    assert got.customer.id == cus["id"]


def test_parent_subscription_stays_an_id_unless_expanded(server, client):
    cus = builders.customer()
    sub = builders.subscription(cus)
    inv = builders.invoice(cus, subscription=sub)
    server.load({"customers": [cus], "subscriptions": [sub], "invoices": [inv]})
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": ["customer"]})
    assert got.parent.subscription_details.subscription == sub["id"]


def test_subscription_of_the_other_mode_is_not_expanded(server, client):
    cus = builders.customer()
    sub = builders.subscription(cus, livemode=True)
    inv = builders.invoice(cus, subscription=sub)
    server.load({"customers": [cus], "subscriptions": [sub], "invoices": [inv]})
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": [SUBSCRIPTION]})
    assert got.parent.subscription_details.subscription == sub["id"]


def test_one_off_invoice_has_no_parent_to_expand(server, client):
    cus = builders.customer()
    inv = builders.invoice(cus, subscription=None)
    server.load({"customers": [cus], "invoices": [inv]})
    assert client.v1.invoices.retrieve(inv["id"], params={"expand": [SUBSCRIPTION]}).parent is None


def test_unknown_invoice_gives_stripe_404_envelope(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.retrieve("in_missing")
    assert exc.value.http_status == 404
    assert exc.value.json_body == {
        "error": {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": "No such invoice: 'in_missing'",
            "param": "id",
            "type": "invalid_request_error",
        }
    }


def test_unknown_customer_is_404(client):
    with pytest.raises(stripe.InvalidRequestError, match="No such customer: 'cus_nope'"):
        client.v1.customers.retrieve("cus_nope")


def test_missing_api_key_is_401(server, seeded):
    resp = requests.get(f"{server.url}/v1/invoices/{seeded[1]['id']}", timeout=5)
    assert resp.status_code == 401
    assert resp.json()["error"]["message"].startswith("You did not provide an API key.")


def test_unknown_api_key_is_401_with_masked_key(server, seeded):
    with pytest.raises(stripe.AuthenticationError) as exc:
        make_client(server, "sk_test_wrongkey1234").v1.invoices.retrieve(seeded[1]["id"])
    assert exc.value.user_message == "Invalid API Key provided: sk_test_****1234"


def test_journal_masks_the_api_key(server, client, seeded):
    client.v1.invoices.retrieve(seeded[1]["id"])
    entry = server.requests()[-1]
    assert entry["headers"]["authorization"] == "Bearer sk_test_****0000"
    assert STRIPE_TEST_KEY not in repr(server.requests())


def test_live_key_cannot_see_test_invoice(server, seeded):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        make_client(server, STRIPE_LIVE_KEY).v1.invoices.retrieve(seeded[1]["id"])
    assert exc.value.http_status == 404


def test_live_key_sees_live_invoice(server):
    cus = builders.customer(livemode=True)
    inv = builders.invoice(cus)
    server.load({"customers": [cus], "invoices": [inv]})
    assert make_client(server, STRIPE_LIVE_KEY).v1.invoices.retrieve(inv["id"]).livemode is True


def test_responses_carry_request_id_and_version(server, client, seeded):
    client.v1.invoices.retrieve(seeded[1]["id"])
    headers = server.requests()[-1]["response_headers"]
    assert headers["Request-Id"].startswith("req_")
    assert headers["Stripe-Version"] == stripe.api_version


def test_unrecognized_url_is_404(server):
    resp = requests.get(
        f"{server.url}/v1/nothing",
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=5,
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing)")


def test_unknown_parameter_is_rejected(client, seeded):
    with pytest.raises(stripe.InvalidRequestError, match="Received unknown parameter: foo"):
        client.v1.invoices.retrieve(seeded[1]["id"], params={"foo": "bar"})


def test_list_is_newest_first_and_paginates(server, client):
    cus = builders.customer()
    invoices = [builders.invoice(cus, created=1_000 + n) for n in range(3)]
    server.load({"customers": [cus], "invoices": invoices})
    first = client.v1.invoices.list(params={"limit": 2})
    assert [i.id for i in first.data] == [invoices[2]["id"], invoices[1]["id"]]
    assert first.has_more is True
    rest = client.v1.invoices.list(params={"limit": 2, "starting_after": first.data[-1].id})
    assert [i.id for i in rest.data] == [invoices[0]["id"]]
    assert rest.has_more is False


def test_list_filters_status_customer_and_created(server, client):
    cus, other = builders.customer(), builders.customer()
    wanted = builders.invoice(cus, created=2_000)
    server.load(
        {
            "customers": [cus, other],
            "invoices": [
                wanted,
                builders.invoice(cus, created=2_000, status="paid"),
                builders.invoice(other, created=2_000),
                builders.invoice(cus, created=500),
            ],
        }
    )
    got = client.v1.invoices.list(
        params={"status": "open", "customer": cus["id"], "created": {"gte": 1_000, "lte": 3_000}}
    )
    assert [i.id for i in got.data] == [wanted["id"]]


def test_list_expands_data_customer(client, seeded):
    got = client.v1.invoices.list(params={"expand": ["data.customer"]})
    assert got.data[0].customer.id == seeded[0]["id"]


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_out_of_range_is_400(client, limit):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.invoices.list(params={"limit": limit})
    assert exc.value.param == "limit"


def failure_events(created_times, livemode=False):
    cus = builders.customer(livemode=livemode)
    invoice = builders.invoice(cus)
    return [builders.payment_failed_event(invoice, created=t) for t in created_times]


def test_events_list_newest_first_and_paginates(server, client):
    events = failure_events([1_000, 1_002, 1_001])
    server.load({"events": events})
    first = client.v1.events.list(params={"limit": 2})
    assert [e.id for e in first.data] == [events[1]["id"], events[2]["id"]]
    assert (first.has_more, first.url) == (True, "/v1/events")
    rest = client.v1.events.list(params={"limit": 2, "starting_after": first.data[-1].id})
    assert [e.id for e in rest.data] == [events[0]["id"]]
    assert rest.has_more is False
    assert rest.data[0].data.object.id == events[0]["data"]["object"]["id"]


def test_events_filter_by_type_and_created(server, client):
    old, wanted, late = failure_events([500, 2_000, 4_000])
    other = {**failure_events([2_000])[0], "type": "invoice.paid"}
    server.load({"events": [old, wanted, late, other]})
    got = client.v1.events.list(
        params={"type": "invoice.payment_failed", "created": {"gte": 1_000, "lte": 3_000}}
    )
    assert [e.id for e in got.data] == [wanted["id"]]
    assert server.requests()[-1]["query"]["created[gte]"] == ["1000"]


def test_events_are_partitioned_by_mode(server):
    test_event, live_event = failure_events([1_000])[0], failure_events([1_000], livemode=True)[0]
    server.load({"events": [test_event, live_event]})
    assert [e.id for e in make_client(server).v1.events.list().data] == [test_event["id"]]
    live = make_client(server, STRIPE_LIVE_KEY).v1.events.list()
    assert [e.id for e in live.data] == [live_event["id"]]


def test_events_unknown_parameter_is_rejected(client):
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: delivery_success"):
        client.v1.events.list(params={"delivery_success": False})


def test_events_unknown_starting_after_is_404(client):
    with pytest.raises(stripe.InvalidRequestError, match="No such event: 'evt_gone'"):
        client.v1.events.list(params={"starting_after": "evt_gone"})


def test_events_limit_out_of_range_is_400(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.events.list(params={"limit": 101})
    assert exc.value.param == "limit"


def test_scenario_refuses_an_event_that_is_not_one(server):
    with pytest.raises(ValueError, match="not a Stripe event object"):
        server.load({"events": [builders.customer()]})


def test_update_sets_and_unsets_metadata(server, client, seeded):
    inv_id = seeded[1]["id"]
    client.v1.invoices.update(inv_id, params={"metadata": {"a": "1", "b": "2"}})
    got = client.v1.invoices.update(inv_id, params={"metadata": {"a": ""}})
    assert got.metadata.to_dict() == {"b": "2"}


def test_idempotent_replay_returns_stored_response(server, client, seeded):
    inv_id = seeded[1]["id"]
    options = {"idempotency_key": "k1"}
    first = client.v1.invoices.update(inv_id, params={"metadata": {"n": "1"}}, options=options)
    server.update_invoice(inv_id, {"metadata": {"n": "changed"}})
    again = client.v1.invoices.update(inv_id, params={"metadata": {"n": "1"}}, options=options)
    assert again.to_dict() == first.to_dict()
    assert server.requests()[-1]["response_headers"]["Idempotent-Replayed"] == "true"


def test_idempotency_key_reuse_with_other_params_is_rejected(client, seeded):
    inv_id = seeded[1]["id"]
    options = {"idempotency_key": "k2"}
    client.v1.invoices.update(inv_id, params={"metadata": {"n": "1"}}, options=options)
    with pytest.raises(stripe.IdempotencyError):
        client.v1.invoices.update(inv_id, params={"metadata": {"n": "2"}}, options=options)


def test_endpoint_rate_limit_returns_429_with_reason():
    with StripeStandin(endpoint_rate=5, global_rate_test=100) as srv:
        client = make_client(srv)
        for _ in range(5):
            with pytest.raises(stripe.InvalidRequestError):
                client.v1.invoices.retrieve("in_missing")
        with pytest.raises(stripe.RateLimitError) as exc:
            client.v1.invoices.retrieve("in_missing")
    assert exc.value.headers["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
    assert exc.value.json_body["error"]["code"] == "rate_limit"


def test_global_rate_limit_spans_endpoints():
    with StripeStandin(endpoint_rate=100, global_rate_test=4) as srv:
        client = make_client(srv)
        for _ in range(2):
            with pytest.raises(stripe.InvalidRequestError):
                client.v1.invoices.retrieve("in_missing")
            with pytest.raises(stripe.InvalidRequestError):
                client.v1.customers.retrieve("cus_missing")
        with pytest.raises(stripe.RateLimitError) as exc:
            client.v1.invoices.list()
    assert exc.value.headers["Stripe-Rate-Limited-Reason"] == "global-rate"


def test_concurrent_burst_admits_exactly_the_endpoint_limit():
    with StripeStandin(endpoint_rate=10, global_rate_test=None) as srv:
        url = f"{srv.url}/v1/invoices"
        headers = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(
                pool.map(
                    lambda _: requests.get(url, headers=headers, timeout=5).status_code, range(40)
                )
            )
        stats = srv.stats()
    assert sorted(codes) == [200] * 10 + [429] * 30
    assert stats["peak_per_second"]["overall"] == 40


def test_rate_window_slides():
    clock = TestSeconds()
    with StripeStandin(endpoint_rate=2, clock=clock) as srv:
        client = make_client(srv, retries=0)
        client.v1.invoices.list()
        clock.advance(0.5)
        client.v1.invoices.list()
        with pytest.raises(stripe.RateLimitError):
            client.v1.invoices.list()
        # The first request leaves the window a second after it came, the second stays in it.
        clock.advance(0.5)
        assert client.v1.invoices.list().data == []
        with pytest.raises(stripe.RateLimitError):
            client.v1.invoices.list()


def test_stats_report_peak_and_429s():
    with StripeStandin(endpoint_rate=3) as srv:
        client = make_client(srv)
        for _ in range(4):
            with contextlib.suppress(stripe.RateLimitError):
                client.v1.invoices.list()
        stats = srv.stats()
    assert stats["rate_limited"] == 1
    assert stats["peak_per_second"]["by_endpoint"]["GET /v1/invoices"] == 4
    assert stats["by_endpoint"]["GET /v1/invoices"] == 4


def test_injected_500s_are_retried_by_the_client(server, client, seeded):
    server.add_fault(r"^/v1/invoices/", status=500, times=2)
    assert client.v1.invoices.retrieve(seeded[1]["id"]).id == seeded[1]["id"]
    assert [r["status"] for r in server.requests()] == [500, 500, 200]


def test_injected_500_uses_stripe_envelope(server, seeded):
    server.add_fault(status=500, times=3)
    with pytest.raises(stripe.APIError) as exc:
        make_client(server).v1.invoices.retrieve(seeded[1]["id"])
    assert exc.value.json_body == {
        "error": {"type": "api_error", "message": "An unknown error occurred"}
    }


def test_injected_reset_is_a_connection_error(server, seeded):
    server.add_fault(reset=True, times=3)
    with pytest.raises(stripe.APIConnectionError):
        make_client(server).v1.invoices.retrieve(seeded[1]["id"])


def test_injected_delay_times_out_the_client(server, seeded):
    server.add_fault(delay_s=0.5, times=3)
    with pytest.raises(stripe.APIConnectionError):
        make_client(server, timeout=0.1).v1.invoices.retrieve(seeded[1]["id"])


def test_fault_over_http_with_custom_body(server, client, seeded):
    fault = {"method": "GET", "path": "invoices", "status": 429, "body": {"error": {"x": 1}}}
    requests.post(f"{server.url}/_control/faults", json=[fault], timeout=5).raise_for_status()
    with pytest.raises(stripe.RateLimitError) as exc:
        client.v1.invoices.retrieve(seeded[1]["id"])
    assert exc.value.json_body == {"error": {"x": 1}}


def test_latency_delays_api_but_not_control():
    clock = TestSeconds()
    invoice = builders.invoice(builders.customer())
    with StripeStandin(clock=clock, scenario={"invoices": [invoice]}) as srv:
        requests.post(f"{srv.url}/_control/latency", json={"latency_s": 0.2}, timeout=5)
        make_client(srv).v1.invoices.retrieve(invoice["id"])
        requests.get(f"{srv.url}/_control/stats", timeout=5).raise_for_status()
        assert clock.slept == [0.2]


def test_control_patch_changes_invoice_mid_test(server, client, seeded):
    inv_id = seeded[1]["id"]
    resp = requests.post(
        f"{server.url}/_control/invoices/{inv_id}",
        json={"status": "paid", "amount_remaining": 0},
        timeout=5,
    )
    assert resp.status_code == 200
    assert client.v1.invoices.retrieve(inv_id).status == "paid"


def test_control_scenario_and_reset(server, client):
    cus = builders.customer()
    requests.post(f"{server.url}/_control/scenario", json={"customers": [cus]}, timeout=5)
    assert client.v1.customers.retrieve(cus["id"]).id == cus["id"]
    requests.post(f"{server.url}/_control/reset", timeout=5)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(cus["id"])
    assert len(requests.get(f"{server.url}/_control/requests", timeout=5).json()) == 1


def test_invoice_builder_freezes_customer_fields():
    cus = builders.customer(name="Ana Ruiz", phone="+34 600 000 000", country="ES")
    inv = builders.invoice(cus, attempt_count=3)
    assert (inv["customer"], inv["customer_name"], inv["customer_phone"]) == (
        cus["id"],
        "Ana Ruiz",
        "+34 600 000 000",
    )
    assert inv["customer_address"]["country"] == "ES"
    assert inv["id"].startswith("in_")
    assert inv["attempt_count"] == 3


def test_invoice_builder_without_lines():
    assert builders.invoice("cus_x", description_line=None)["lines"]["data"] == []


def test_snapshot_event_verifies_with_stripe():
    inv = builders.invoice(builders.customer())
    body = json.dumps(builders.payment_failed_event(inv))
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_test")
    event = stripe.Webhook.construct_event(body, header, "whsec_test")
    assert event.type == "invoice.payment_failed"
    assert event.data.object.id == inv["id"]


def test_thin_event_parses_and_fetches_from_standin(server, client, seeded):
    body = json.dumps(builders.thin_payment_failed_event(seeded[1]["id"]))
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_test")
    note = client.parse_event_notification(body, header, "whsec_test")
    assert isinstance(note, stripe.events.V1InvoicePaymentFailedEventNotification)
    assert note.fetch_related_object().id == seeded[1]["id"]


def test_a_connected_accounts_objects_are_seen_only_on_its_behalf(stripe_api):
    customer = builders.customer()
    invoice = builders.invoice(customer)
    stripe_api.load(
        {"accounts": [{"id": "acct_1Seen", "invoices": [invoice], "customers": [customer]}]}
    )
    auth = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
    url = f"{stripe_api.url}/v1/invoices/{invoice['id']}"
    assert requests.get(url, headers=auth, timeout=5).status_code == 404
    on_behalf = requests.get(url, headers={**auth, "Stripe-Account": "acct_1Seen"}, timeout=5)
    assert on_behalf.status_code == 200
    stranger = requests.get(url, headers={**auth, "Stripe-Account": "acct_1Other"}, timeout=5)
    assert stranger.status_code == 403
    assert "does not have access to account 'acct_1Other'" in stranger.json()["error"]["message"]


# --- an invoice's payments and their PaymentIntents ----------------------------------------

INTENT = "payments.data.payment.payment_intent"


def raw_invoice(server, invoice_id, *expand, account=None):
    """GET /v1/invoices/ID with `expand[]=...`, as JSON (with the connected account's header)."""
    headers = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
    if account is not None:
        headers["Stripe-Account"] = account
    query = "&".join(f"expand[]={path}" for path in expand)
    return requests.get(
        f"{server.url}/v1/invoices/{invoice_id}?{query}", headers=headers, timeout=5
    )


def test_payments_are_left_out_of_an_invoice_unless_asked_for(server, seeded):
    invoice_id = seeded[1]["id"]
    assert "payments" not in raw_invoice(server, invoice_id).json()
    [payment] = raw_invoice(server, invoice_id, "payments").json()["payments"]["data"]
    assert (payment["object"], payment["invoice"], payment["status"]) == (
        "invoice_payment",
        invoice_id,
        "open",
    )
    # Included, not expanded: the PaymentIntent is its id.
    assert payment["payment"]["payment_intent"].startswith("pi_")


def test_a_path_inside_the_payments_brings_them_with_each_payment_intent(server, client):
    cus = builders.customer()
    declined = builders.payment_intent(decline_code="insufficient_funds", customer=cus["id"])
    inv = builders.invoice(cus, payment=declined)
    server.load({"customers": [cus], "invoices": [inv]})
    got = client.v1.invoices.retrieve(inv["id"], params={"expand": ["customer", INTENT]})
    intent = got.payments.data[0].payment.payment_intent
    assert (type(intent).__name__, intent.id, intent.status) == (
        "PaymentIntent",
        declined["id"],
        "requires_payment_method",
    )
    error = intent.last_payment_error
    assert (error.type, error.code, error.decline_code, error.message) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    assert got.customer.id == cus["id"]


@pytest.mark.parametrize(
    ("path", "listing"),
    [
        ("payments.data.payment.payment_intent.customer", False),
        ("lines.data.pricing.price_details.price.product", False),
        # Four levels on an invoice are five on a list of invoices: Stripe refuses them there.
        (f"data.{INTENT}", True),
    ],
)
def test_an_expansion_deeper_than_four_levels_is_refused_as_stripe_refuses_it(
    server, seeded, path, listing
):
    headers = {"Authorization": f"Bearer {STRIPE_TEST_KEY}"}
    url = f"{server.url}/v1/invoices" + ("" if listing else f"/{seeded[1]['id']}")
    answer = requests.get(url, params={"expand[]": path}, headers=headers, timeout=5)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["message"]) == (
        "invalid_request_error",
        "property_expansion_max_depth",
        f"You cannot expand more than 4 levels of a property. Property: {path}",
    )


def test_the_depth_is_judged_before_anything_else_of_the_path(server, seeded):
    # Five levels of nothing that exists: still the depth that is refused.
    answer = raw_invoice(server, seeded[1]["id"], "a.b.c.d.e")
    assert answer.json()["error"]["code"] == "property_expansion_max_depth"
    assert "cannot be expanded (a.b.c.d)" in raw_invoice(server, seeded[1]["id"], "a.b.c.d").text


def test_a_connected_accounts_payment_intent_is_expanded_on_its_behalf(server):
    cus = builders.customer()
    inv = builders.invoice(cus)
    server.load({"accounts": [{"id": "acct_1Pays", "customers": [cus], "invoices": [inv]}]})
    found = raw_invoice(server, inv["id"], INTENT, account="acct_1Pays").json()
    intent = found["payments"]["data"][0]["payment"]["payment_intent"]
    assert (intent["object"], intent["last_payment_error"]["decline_code"]) == (
        "payment_intent",
        "generic_decline",
    )


def test_paying_an_invoice_settles_its_latest_payment_intent(server, seeded):
    invoice_id = seeded[1]["id"]
    server.pay_invoice(invoice_id)
    found = raw_invoice(server, invoice_id, INTENT).json()
    [payment] = found["payments"]["data"]
    intent = payment["payment"]["payment_intent"]
    assert (found["status"], payment["status"], payment["amount_paid"]) == ("paid", "paid", 2500)
    assert (intent["status"], intent["last_payment_error"], intent["amount_received"]) == (
        "succeeded",
        None,
        2500,
    )


def test_the_control_client_pays_an_invoice(server, client, seeded):
    invoice_id = seeded[1]["id"]
    paid = StandinClient(server.url).pay_invoice(invoice_id)
    assert (paid["event"]["type"], paid["event"]["data"]["object"]["id"]) == (
        "invoice.paid",
        invoice_id,
    )
    assert paid["delivered"] is None
    assert client.v1.invoices.retrieve(invoice_id).status == "paid"


def test_a_payment_intent_can_change_mid_test(server, seeded):
    invoice_id = seeded[1]["id"]
    intent_id = raw_invoice(server, invoice_id, "payments").json()["payments"]["data"][0][
        "payment"
    ]["payment_intent"]
    answer = requests.post(
        f"{server.url}/_control/payment_intents/{intent_id}",
        json={"status": "requires_action", "last_payment_error": None},
        timeout=5,
    )
    assert answer.status_code == 200
    found = raw_invoice(server, invoice_id, INTENT).json()
    assert found["payments"]["data"][0]["payment"]["payment_intent"]["status"] == "requires_action"


def test_a_new_payment_patched_into_an_invoice_is_kept_like_a_loaded_one(server, seeded):
    invoice_id = seeded[1]["id"]
    newer = builders.payment_intent(code="processing_error", decline_code=None)
    payments = builders.invoice("cus_x", id=invoice_id, payment=newer)["payments"]
    server.update_invoice(invoice_id, {"attempt_count": 2, "payments": payments})
    found = raw_invoice(server, invoice_id, INTENT).json()
    intent = found["payments"]["data"][0]["payment"]["payment_intent"]
    assert (intent["id"], intent["last_payment_error"]["code"]) == (newer["id"], "processing_error")
    assert "decline_code" not in intent["last_payment_error"]


def test_events_carry_no_payments_as_stripe_includes_them_only_on_request():
    invoice = builders.invoice(builders.customer())
    assert invoice["payments"]["data"]
    for event in (
        builders.payment_failed_event(invoice),
        builders.invoice_paid_event(builders.paid(invoice)),
    ):
        assert "payments" not in event["data"]["object"]
        assert event["data"]["object"]["id"] == invoice["id"]


@pytest.mark.parametrize(
    ("changes", "payments"),
    [
        ({}, [("requires_payment_method", "generic_decline")]),
        ({"status": "paid"}, [("succeeded", None)]),
        ({"status": "draft", "attempt_count": 0}, []),
        ({"attempt_count": 0}, []),
        ({"payment": None}, []),
    ],
)
def test_the_invoice_builder_gives_an_attempted_invoice_its_payment(changes, payments):
    invoice = builders.invoice(builders.customer(), **changes)
    found = []
    for payment in invoice["payments"]["data"]:
        intent = payment["payment"]["payment_intent"]
        error = intent["last_payment_error"] or {}
        found.append((intent["status"], error.get("decline_code")))
        assert (payment["invoice"], intent["amount"], intent["customer"]) == (
            invoice["id"],
            invoice["amount_due"],
            invoice["customer"],
        )
    assert found == payments
    assert invoice["payments"]["total_count"] == len(payments)


def test_a_payment_waiting_for_3d_secure_has_its_next_action_and_no_error():
    intent = builders.payment_intent(status="requires_action", code=None)
    assert (intent["status"], intent["last_payment_error"], intent["latest_charge"]) == (
        "requires_action",
        None,
        None,
    )
    assert intent["next_action"]["type"] == "use_stripe_sdk"


@pytest.mark.parametrize(
    ("changes", "retry_in"),
    [
        ({}, 3 * 86400),
        ({"attempt_count": 4}, 3 * 86400),
        ({"status": "paid"}, None),
        ({"status": "void"}, None),
        ({"status": "draft", "attempt_count": 0}, None),
        ({"next_payment_attempt": None}, None),
    ],
)
def test_an_open_attempted_invoice_is_retried_by_stripe_three_days_on(changes, retry_in):
    invoice = builders.invoice("cus_x", created=1_800_000_000, **changes)
    expected = None if retry_in is None else 1_800_000_000 + retry_in
    assert invoice["next_payment_attempt"] == expected


# --- webhook endpoints (deploy.sh creates the ingest function's) ----------------------------------

HOOK_URL = "https://us-central1-acme.cloudfunctions.net/dunning-ingest"
PRODUCT_EVENTS = ["invoice.payment_failed", "invoice.paid", "invoice.payment_action_required"]
NO_WEBHOOKS_KEY, READ_WEBHOOKS_KEY, WRITE_WEBHOOKS_KEY = (
    "rk_test_invoicesOnly",
    "rk_test_readsHooks",
    "rk_test_managesHooks",
)


def new_endpoint(client: stripe.StripeClient, **params) -> stripe.WebhookEndpoint:
    return client.v1.webhook_endpoints.create(
        params={"url": HOOK_URL, "enabled_events": PRODUCT_EVENTS, **params}
    )


def endpoint_ids(client: stripe.StripeClient) -> list[str]:
    return [endpoint.id for endpoint in client.v1.webhook_endpoints.list().data]


def test_an_endpoint_s_secret_is_in_the_answer_that_creates_it_and_nowhere_else(client):
    from shared.core.signing_secret import stripe_secret_problem

    created = new_endpoint(client, api_version=stripe.api_version, metadata={"connect": "false"})
    assert stripe_secret_problem(created.secret) is None
    assert (created.url, created.enabled_events, created.api_version, created.status) == (
        HOOK_URL,
        PRODUCT_EVENTS,
        "2026-10-28.endive",
        "enabled",
    )
    assert created.metadata.to_dict() == {"connect": "false"}
    fetched = client.v1.webhook_endpoints.retrieve(created.id).to_dict()
    [listed] = [endpoint.to_dict() for endpoint in client.v1.webhook_endpoints.list().data]
    assert fetched == listed == {k: v for k, v in created.to_dict().items() if k != "secret"}
    # Each endpoint gets its own secret.
    assert new_endpoint(client).secret != created.secret


def test_webhook_endpoints_are_listed_newest_first_page_by_page(server, client):
    endpoints = [builders.webhook_endpoint(HOOK_URL, ["*"], created=1_000 + n) for n in range(3)]
    server.load({"webhook_endpoints": endpoints})
    first = client.v1.webhook_endpoints.list(params={"limit": 2})
    assert [e.id for e in first.data] == [endpoints[2]["id"], endpoints[1]["id"]]
    assert first.has_more is True
    rest = client.v1.webhook_endpoints.list(
        params={"limit": 2, "starting_after": first.data[-1].id}
    )
    assert ([e.id for e in rest.data], rest.has_more) == ([endpoints[0]["id"]], False)
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: created"):
        client.v1.webhook_endpoints.list(params={"created": 1_000})


def test_a_key_sees_the_webhook_endpoints_of_its_own_mode_only(server, client):
    created = new_endpoint(client)
    live = make_client(server, STRIPE_LIVE_KEY)
    assert endpoint_ids(live) == []
    with pytest.raises(stripe.InvalidRequestError, match="No such webhook endpoint"):
        live.v1.webhook_endpoints.retrieve(created.id)
    assert endpoint_ids(client) == [created.id]


def test_the_sdk_s_event_types_and_versions_are_the_ones_accepted():
    from standins.stripe_api import ENDPOINT_API_VERSIONS, ENDPOINT_EVENTS

    assert {*PRODUCT_EVENTS, "*", "invoice.payment_succeeded"} <= ENDPOINT_EVENTS
    assert len(ENDPOINT_EVENTS) > 200
    assert stripe.api_version in ENDPOINT_API_VERSIONS


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"url": None}, "url", "Missing required param: url."),
        ({"enabled_events": None}, "enabled_events", "Missing required param: enabled_events."),
        ({"url": "ftp://hooks.example.com/x"}, "url", "Invalid URL: ftp://hooks.example.com/x"),
        ({"url": "hooks.example.com/x"}, "url", "An explicit scheme"),
        ({"url": "http://127.0.0.1:8080/hook"}, "url", "URL must be publicly accessible"),
        ({"url": "https://localhost/hook"}, "url", "URL must be publicly accessible"),
        ({"url": "https://10.1.2.3/hook"}, "url", "URL must be publicly accessible"),
        (
            {"enabled_events": ["invoice.paid", "invoice.payment_faild"]},
            "enabled_events[1]",
            "Invalid enabled_events[1]",
        ),
        ({"api_version": "2026-13-45.nope"}, "api_version", "Invalid api_version"),
        ({"connect": "yes"}, "connect", "Invalid boolean: yes"),
        ({"secret": "whsec_mine"}, "secret", "Received unknown parameter: secret"),
    ],
)
def test_an_invalid_endpoint_is_refused_with_stripe_s_error_and_nothing_is_made(
    server, params, param, message
):
    form = {"url": HOOK_URL, "enabled_events[]": PRODUCT_EVENTS, **params}
    if "enabled_events" in params:
        form["enabled_events[]"] = form.pop("enabled_events")
    answer = requests.post(
        f"{server.url}/v1/webhook_endpoints",
        data={key: value for key, value in form.items() if value is not None},
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=5,
    )
    error = answer.json()["error"]
    assert (answer.status_code, error["type"], error["param"]) == (
        400,
        "invalid_request_error",
        param,
    )
    assert message in error["message"]
    assert endpoint_ids(make_client(server)) == []


def test_enabled_events_must_be_an_array(server):
    answer = requests.post(
        f"{server.url}/v1/webhook_endpoints",
        data={"url": HOOK_URL, "enabled_events": "invoice.paid"},
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]["message"]) == (400, "Invalid array")


def test_a_live_endpoint_must_use_https(server):
    live = make_client(server, STRIPE_LIVE_KEY)
    with pytest.raises(stripe.InvalidRequestError, match="live mode must use HTTPS"):
        new_endpoint(live, url="http://hooks.example.com/stripe")
    assert (
        new_endpoint(make_client(server), url="http://hooks.example.com/stripe").livemode is False
    )


def test_an_update_changes_the_events_and_status_never_the_version_or_connect(client):
    created = new_endpoint(client, api_version=stripe.api_version)
    updated = client.v1.webhook_endpoints.update(
        created.id, params={"enabled_events": ["*"], "disabled": True}
    )
    assert (updated.enabled_events, updated.status, updated.api_version) == (
        ["*"],
        "disabled",
        "2026-10-28.endive",
    )
    assert "secret" not in updated
    for fixed in ({"api_version": "2025-01-27.acacia"}, {"connect": True}):
        with pytest.raises(stripe.InvalidRequestError, match="Received unknown parameter"):
            client.v1.webhook_endpoints.update(created.id, params=fixed)


def test_a_deleted_endpoint_is_gone(client):
    created = new_endpoint(client)
    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    assert endpoint_ids(client) == []
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.webhook_endpoints.delete(created.id)
    assert (gone.value.http_status, gone.value.code) == (404, "resource_missing")


def test_a_repeated_create_with_its_idempotency_key_makes_one_endpoint(client):
    options = {"idempotency_key": "deploy-1"}
    params = {"url": HOOK_URL, "enabled_events": PRODUCT_EVENTS}
    first = client.v1.webhook_endpoints.create(params=params, options=options)
    again = client.v1.webhook_endpoints.create(params=params, options=options)
    assert (again.id, again.secret) == (first.id, first.secret)
    assert endpoint_ids(client) == [first.id]


def test_an_account_has_at_most_16_endpoints_in_each_mode(server, client):
    server.load(
        {"webhook_endpoints": [builders.webhook_endpoint(HOOK_URL, ["*"]) for _ in range(16)]}
    )
    with pytest.raises(stripe.InvalidRequestError, match="maximum of 16 test webhook endpoints"):
        new_endpoint(client)
    assert new_endpoint(make_client(server, STRIPE_LIVE_KEY)).livemode is True


@pytest.fixture
def restricted() -> Iterator[StripeStandin]:
    keys = {
        NO_WEBHOOKS_KEY: ["rak_invoice_read"],
        READ_WEBHOOKS_KEY: ["rak_webhook_read"],
        WRITE_WEBHOOKS_KEY: ["rak_webhook_write"],
    }
    with StripeStandin(restricted_keys=keys) as srv:
        yield srv


@pytest.mark.parametrize(
    ("key", "listed", "created"),
    [
        (NO_WEBHOOKS_KEY, "rak_webhook_read", "rak_webhook_write"),
        (READ_WEBHOOKS_KEY, None, "rak_webhook_write"),
        # A write permission includes the read one.
        (WRITE_WEBHOOKS_KEY, None, None),
        (STRIPE_TEST_KEY, None, None),
    ],
)
def test_a_restricted_key_may_use_webhook_endpoints_only_with_their_permission(
    restricted, key, listed, created
):
    client = make_client(restricted, key)
    for call, needed in (
        (lambda: client.v1.webhook_endpoints.list(params={"limit": 1}), listed),
        (lambda: new_endpoint(client), created),
    ):
        if needed is None:
            call()
            continue
        with pytest.raises(stripe.PermissionError) as refused:
            call()
        assert refused.value.http_status == 403
        assert refused.value.user_message == (
            f"The provided key '{key[:8]}****{key[-4:]}' does not have the required permissions "
            "for this endpoint on account 'acct_1StandIn'. Having the "
            f"'{needed}' permission would allow this request to continue."
        )
    # Nothing was made by a refused request.
    assert len(endpoint_ids(make_client(restricted))) == (created is None)


def test_a_restricted_key_is_checked_before_the_parameters(restricted):
    """An empty create is refused 403 without the write permission and 400 with it: a check
    that creates nothing (tools/stripe_webhook.py asks it before anything is made)."""
    with pytest.raises(stripe.PermissionError):
        make_client(restricted, READ_WEBHOOKS_KEY).v1.webhook_endpoints.create(params={})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        make_client(restricted, WRITE_WEBHOOKS_KEY).v1.webhook_endpoints.create(params={})
    assert missing.value.code == "parameter_missing"


def test_a_restricted_key_reads_invoices_only_with_their_permission(restricted):
    cus = builders.customer()
    inv = builders.invoice(cus)
    restricted.load({"customers": [cus], "invoices": [inv]})
    assert make_client(restricted, NO_WEBHOOKS_KEY).v1.invoices.retrieve(inv["id"]).id == inv["id"]
    with pytest.raises(stripe.PermissionError, match="rak_invoice_read"):
        make_client(restricted, READ_WEBHOOKS_KEY).v1.invoices.retrieve(inv["id"])
