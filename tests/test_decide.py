"""The decision, one row per outcome, with no network: guards in their fixed order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.attribution import HOLDOUT, TREATED
from shared.core.decide import Defer, Facts, Finish, Hold, Send, decide, in_holdout, screen
from shared.core.entry import Entry, EntryKey, Plan, State
from shared.core.errors import PermanentError
from shared.core.event import FailedPayment
from shared.core.invoice import Invoice, parse_invoice
from shared.core.message import DEFAULT_ACTION_TEMPLATE, DEFAULT_TEMPLATE, Template, Templates
from shared.core.outcome import Action
from shared.core.policy import AttemptPolicy, QuietHours, parse_quiet_hours
from standins import builders

LINK = "https://invoice.stripe.com/i/acct_1/test_abc"
TEXT = (
    "Hi Jane, your payment for Pro plan didn't go through. You can update your card and retry "
    "with the link below. Reply STOP to opt out."
)
PLAN = Plan("+14155550100", TEXT, LINK)


def recorded(
    plan: Plan | None = None, chat_id: str | None = None, ended: Action | None = None
) -> Entry:
    """A ledger entry as the decision reads it: its plan, the chat its text opened, and the
    outcome it ended with."""
    state = State.DONE if ended is not None else State.ACTIVE
    return Entry(EntryKey("in_1", 2), state, plan=plan, chat_id=chat_id, action=ended)


EVERY_ATTEMPT = AttemptPolicy()
DEFAULT_TEXT = Templates(Template.parse(DEFAULT_TEMPLATE), {})
ACTION_TEXT = Templates(Template.parse(DEFAULT_ACTION_TEMPLATE, "ACTION_TEMPLATE"), {})
NIGHTS = parse_quiet_hours("21:00-08:00")


@dataclass(frozen=True)
class Rules:
    attempts: AttemptPolicy = EVERY_ATTEMPT
    stripe_mode: str = "test"
    default_region: str = "US"
    templates: Templates = DEFAULT_TEXT
    action_templates: Templates = ACTION_TEXT
    brand: str | None = None
    quiet_hours: QuietHours | None = NIGHTS
    holdout_percent: int = 0


def invoice(customer: dict[str, Any] | None = None, **changes: Any) -> Invoice:
    """An invoice as the recover function reads it: customer (and subscription, and its latest
    payment's PaymentIntent: `payment`) expanded."""
    customer = customer or builders.customer()
    payment = {"payment": changes.pop("payment")} if "payment" in changes else {}
    data = builders.invoice(
        customer, hosted_invoice_url=LINK, attempt_count=2, next_payment_attempt=RETRY, **payment
    )
    data["customer"] = customer
    subscription = changes.pop("subscription", None)
    data.update(changes)
    if subscription is not None:
        data["parent"]["subscription_details"]["subscription"] = subscription
    return parse_invoice(data)


def job(**changes: Any) -> FailedPayment:
    fields: dict[str, Any] = {
        "event_id": "evt_1",
        "invoice_id": "in_1",
        "customer_id": "cus_1",
        "attempt_count": 2,
        "livemode": False,
    }
    fields.update(changes)
    return FailedPayment(**fields)


# When Stripe retries the invoice: 2026-11-28 09:46:40 UTC.
RETRY = 1_795_859_200
# The processor could not answer (Stripe's test card 4000000000000119: a code, no decline code).
PROCESSING = builders.payment_intent(code="processing_error", decline_code=None)
# Waiting for the customer to confirm the payment (3-D Secure).
CONFIRM = builders.payment_intent(status="requires_action", code=None)
ACTION = (
    "Hi Jane, your bank asks you to confirm your $25.00 payment for Pro plan. You can confirm it "
    "with the link below. Reply STOP to opt out."
)

# Noon in San Francisco, the default customer's number: outside the default quiet hours.
NOON = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


def facts(**changes: Any) -> Facts:
    base = Facts(job(), NOON, invoice())
    return replace(base, **changes)


def outcome(decision: Finish | Send) -> tuple[str, str | None]:
    assert isinstance(decision, Finish), decision
    return decision.outcome.action.value, decision.outcome.reason


# One row per outcome that is not a send, in the order the guards run.
FINISHES = [
    (
        "attempt outside TEXT_ON_ATTEMPTS",
        facts(),
        Rules(attempts=AttemptPolicy.parse("1")),
        ("skipped:policy", "attempt 2 is not in TEXT_ON_ATTEMPTS=1"),
    ),
    (
        "thin event: the invoice's attempt is judged",
        facts(job=job(attempt_count=None)),
        Rules(attempts=AttemptPolicy.parse("1")),
        ("skipped:policy", "attempt 2 is not in TEXT_ON_ATTEMPTS=1"),
    ),
    (
        "live event, test key",
        facts(job=job(livemode=True)),
        Rules(),
        (
            "failed",
            "event is live-mode but STRIPE_API_KEY is a test key; use the key of the mode the "
            "webhook endpoint belongs to",
        ),
    ),
    (
        "invoice unreadable",
        facts(invoice=None, read_error=PermanentError("invoice not found in test mode: gone")),
        Rules(),
        ("failed", "invoice not found in test mode: gone"),
    ),
    (
        "older attempt than the invoice's",
        facts(job=job(attempt_count=1)),
        Rules(),
        (
            "skipped:superseded",
            "attempt 1 is superseded: the invoice is at attempt 2",
        ),
    ),
    (
        "invoice paid",
        facts(invoice=invoice(status="paid")),
        Rules(),
        ("skipped:not_open", "invoice is paid"),
    ),
    (
        "nothing due",
        facts(invoice=invoice(amount_remaining=0)),
        Rules(),
        ("skipped:not_open", "nothing is due"),
    ),
    (
        "subscription canceled",
        facts(invoice=invoice(subscription={"id": "sub_1", "status": "canceled"})),
        Rules(),
        ("skipped:canceled", "subscription sub_1 is canceled"),
    ),
    (
        "a decline that is the processor's, Stripe retrying",
        facts(invoice=invoice(payment=PROCESSING)),
        Rules(),
        (
            "skipped:processor_error",
            "decline code processing_error is not the customer's to fix; Stripe retries at "
            "2026-11-28T09:46:40Z",
        ),
    ),
    (
        "no hosted invoice URL",
        facts(invoice=invoice(hosted_invoice_url=None)),
        Rules(),
        ("failed", "open invoice has no hosted_invoice_url to link to"),
    ),
    (
        "deleted customer",
        facts(invoice=invoice(builders.customer(deleted=True))),
        Rules(),
        ("skipped:no_phone", "customer was deleted"),
    ),
    (
        "no phone",
        facts(invoice=invoice(builders.customer(phone=None))),
        Rules(),
        ("skipped:no_phone", "no phone on file"),
    ),
    (
        "phone not a number",
        facts(invoice=invoice(builders.customer(phone="call me"))),
        Rules(),
        ("skipped:no_phone", "phone on file is not a valid number"),
    ),
    (
        "resumed, invoice paid before the text",
        facts(invoice=invoice(status="paid"), entry=recorded(plan=replace(PLAN, line="+1202"))),
        Rules(),
        ("skipped:not_open", "invoice is paid"),
    ),
]


@pytest.mark.parametrize(
    ("case", "given", "rules", "expected"), FINISHES, ids=[r[0] for r in FINISHES]
)
def test_each_guard_ends_the_run_with_its_outcome(case, given, rules, expected):
    assert outcome(decide(given, rules)) == expected


def test_an_open_invoice_with_a_phone_is_planned_with_the_exact_text():
    assert decide(facts(), Rules()) == Send(PLAN, group=TREATED)


def test_the_policy_comes_before_everything_even_an_unreadable_invoice():
    given = facts(invoice=None, read_error=PermanentError("Stripe rejected the API key"))
    assert outcome(decide(given, Rules(attempts=AttemptPolicy.parse("1"))))[0] == "skipped:policy"


def test_the_mode_comes_before_the_invoice():
    given = facts(job=job(livemode=True), invoice=None)
    assert outcome(decide(given, Rules()))[0] == "failed"


def test_screen_needs_no_invoice_and_lets_everything_else_through():
    assert screen(job(), Rules()) is None
    assert screen(job(attempt_count=None), Rules(attempts=AttemptPolicy.parse("1"))) is None
    assert isinstance(screen(job(livemode=True), Rules()), Finish)


def test_a_recorded_plan_is_sent_as_recorded_even_after_the_customer_changed():
    first = replace(PLAN, text="Hi Ana, the text as it was first decided. Reply STOP", line="+1")
    changed = invoice(builders.customer(name="Someone Else", phone="+1 415 555 0199"))
    assert decide(facts(invoice=changed, entry=recorded(plan=first)), Rules()) == Send(first)


def test_a_resumed_run_after_the_text_sends_only_the_link():
    entry = recorded(plan=replace(PLAN, line="+1"), chat_id="chat_1")
    assert decide(facts(entry=entry), Rules()) == Send(entry.plan, "chat_1")


def test_invoice_paid_between_text_and_link_counts_as_sent_without_the_link():
    entry = recorded(plan=replace(PLAN, line="+1"), chat_id="chat_1")
    decision = decide(facts(invoice=invoice(status="paid"), entry=entry), Rules())
    assert isinstance(decision, Finish)
    assert (decision.outcome.action.value, decision.outcome.chat_id, decision.outcome.reason) == (
        "sent",
        "chat_1",
        "link not sent: invoice is paid",
    )


def test_a_newer_attempt_does_not_stop_a_resumed_link():
    # The text of attempt 1 went out; attempt 2 has its own event and its own text.
    entry = recorded(plan=replace(PLAN, line="+1"), chat_id="chat_1")
    assert decide(facts(job=job(attempt_count=1), entry=entry), Rules()) == Send(
        entry.plan, "chat_1"
    )


def test_a_recorded_plan_whose_text_did_not_go_out_is_superseded_by_a_newer_attempt():
    # The newer attempt has its own event and its own text: the older one's is not sent too.
    entry = recorded(plan=replace(PLAN, line="+1"))
    assert outcome(decide(facts(job=job(attempt_count=1), entry=entry), Rules())) == (
        "skipped:superseded",
        "attempt 1 is superseded: the invoice is at attempt 2",
    )


# --- an older attempt beside a newer one (the invoice at attempt 2, the message for attempt 1) ---

OLDER = job(attempt_count=1)
PLANNED = replace(PLAN, line="+1")


@pytest.mark.parametrize(
    ("case", "policy", "invoice_attempt", "newest", "superseded"),
    [
        ("the newer attempt's event not handled yet", "all", 2, None, True),
        ("the newer attempt being decided", "all", 2, recorded(), True),
        ("the newer attempt planned", "all", 2, recorded(plan=PLANNED), True),
        ("the newer attempt texted", "all", 2, recorded(PLANNED, "chat_2", Action.SENT), True),
        # Its text went out and the link failed: texted all the same.
        ("the newer attempt texted, link failed", "all", 2, recorded(PLANNED, "chat_2"), True),
        # TEXT_ON_ATTEMPTS=1 (and docs/configuration.md's 1,4): attempt 2 never gets a text.
        ("the newer attempt outside the policy", "1", 2, None, False),
        ("the newer attempt outside 1,4", "1,4", 2, None, False),
        ("the newer attempt skipped by the policy", "1", 2, recorded(ended=Action.POLICY), False),
        ("the fourth attempt of 1,4", "1,4", 4, None, True),
        # TEXT_ON_ATTEMPTS changed after attempt 2 was skipped: it will never be texted now.
        (
            "the newer attempt skipped, policy since changed",
            "all",
            2,
            recorded(ended=Action.POLICY),
            False,
        ),
    ],
)
def test_an_older_attempt_is_superseded_only_by_one_that_is_or_will_be_texted(
    case, policy, invoice_attempt, newest, superseded
):
    rules = Rules(attempts=AttemptPolicy.parse(policy))
    given = facts(job=OLDER, invoice=invoice(attempt_count=invoice_attempt), newest=newest)
    # A recorded plan whose text had not gone out follows the same rule.
    resumed = replace(given, entry=recorded(plan=PLANNED))
    if superseded:
        reason = f"attempt 1 is superseded: the invoice is at attempt {invoice_attempt}"
        assert outcome(decide(given, rules)) == ("skipped:superseded", reason)
        assert outcome(decide(resumed, rules)) == ("skipped:superseded", reason)
    else:
        assert decide(given, rules) == Send(PLAN, group=TREATED)
        assert decide(resumed, rules) == Send(PLANNED)


def test_an_older_attempt_not_superseded_still_waits_for_the_morning():
    rules = Rules(attempts=AttemptPolicy.parse("1"))
    decision = decide(facts(job=OLDER, now=NIGHT), rules)
    assert isinstance(decision, Defer)


def test_a_message_ahead_of_the_invoice_is_judged_by_the_invoice():
    assert decide(facts(job=job(attempt_count=5)), Rules()) == Send(PLAN, group=TREATED)


# --- quiet hours (the recipient: +1 415, America/Los_Angeles) --------------------------------

NIGHT = datetime(2026, 11, 26, 11, 12, tzinfo=UTC)  # 03:12 in San Francisco


def test_a_failure_at_night_is_deferred_to_the_recipients_morning():
    decision = decide(facts(now=NIGHT), Rules())
    assert isinstance(decision, Defer)
    assert decision.due_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 08:00 local
    assert decision.zones == ("America/Los_Angeles",)
    assert (decision.outcome.action.value, decision.outcome.reason, decision.outcome.due_at) == (
        "deferred:quiet_hours",
        "03:12 in America/Los_Angeles; due 2026-11-26T16:00:00Z",
        "2026-11-26T16:00:00Z",
    )


def test_quiet_hours_off_texts_at_night():
    assert decide(facts(now=NIGHT), Rules(quiet_hours=None)) == Send(PLAN, group=TREATED)


def test_the_policy_and_the_invoice_come_before_the_quiet_hours():
    # At night, an attempt outside the policy or a paid invoice is said at once, not deferred.
    assert outcome(decide(facts(now=NIGHT), Rules(attempts=AttemptPolicy.parse("1"))))[0] == (
        "skipped:policy"
    )
    assert outcome(decide(facts(now=NIGHT, invoice=invoice(status="paid")), Rules()))[0] == (
        "skipped:not_open"
    )
    no_phone = facts(now=NIGHT, invoice=invoice(builders.customer(phone=None)))
    assert outcome(decide(no_phone, Rules()))[0] == "skipped:no_phone"


def test_the_address_country_adds_its_zones():
    # A US number, an address in France: daytime in California is evening in Paris (21:00).
    customer = builders.customer(phone="+1 415 555 0100", country="FR")
    decision = decide(facts(invoice=invoice(customer)), Rules())
    assert isinstance(decision, Defer)
    assert "Europe/Paris" in decision.zones


def new_york_number_california_address() -> Invoice:
    customer = builders.customer(phone="+1 212 555 0100", country="US")
    customer["address"]["state"] = "CA"
    return invoice(customer)


# 07:03 in Los Angeles, 10:03 in New York.
LA_MORNING = datetime(2026, 11, 26, 15, 3, tzinfo=UTC)


def test_the_address_state_adds_its_zones():
    decision = decide(facts(now=LA_MORNING, invoice=new_york_number_california_address()), Rules())
    assert isinstance(decision, Defer)
    assert decision.zones == ("America/Los_Angeles", "America/New_York")
    assert decision.outcome.reason == "07:03 in America/Los_Angeles; due 2026-11-26T16:00:00Z"


def test_a_recorded_plan_whose_text_did_not_go_out_waits_for_the_address_states_morning():
    entry = recorded(plan=Plan("+12125550100", TEXT, LINK, line="+1"))
    given = facts(now=LA_MORNING, invoice=new_york_number_california_address(), entry=entry)
    decision = decide(given, Rules())
    assert isinstance(decision, Defer)
    assert decision.due_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def test_a_deferral_already_due_sends_now():
    # Judged at the window's end: a released payment is decided again and goes out.
    morning = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert decide(facts(now=morning), Rules()) == Send(PLAN, group=TREATED)


def test_a_recorded_plan_is_not_deferred():
    # A payment whose text went out is finished at once, whatever the hour: the link follows it.
    entry = recorded(plan=replace(PLAN, line="+1"), chat_id="chat_1")
    assert decide(facts(now=NIGHT, entry=entry), Rules()) == Send(entry.plan, "chat_1")


def test_a_recorded_plan_whose_text_did_not_go_out_waits_for_the_morning():
    # Decided by day, the text failed, the retry comes at night: nothing is sent at night.
    decision = decide(facts(now=NIGHT, entry=recorded(plan=replace(PLAN, line="+1"))), Rules())
    assert isinstance(decision, Defer)
    assert decision.due_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


# --- holdout ---------------------------------------------------------------------------------


def test_an_invoice_in_the_holdout_group_is_not_texted():
    holdout = next(f"in_{n}" for n in range(1000) if in_holdout(f"in_{n}", 10))
    given = facts(invoice=replace(invoice(), id=holdout))
    assert outcome(decide(given, Rules(holdout_percent=10))) == (
        "skipped:holdout",
        "in the holdout group (HOLDOUT_PERCENT=10): kept untexted to measure what the texts cause",
    )
    assert decide(given, Rules(holdout_percent=0)) == Send(PLAN, group=TREATED)


def test_the_holdout_comes_after_the_invoice_and_the_phone_and_before_the_night():
    holdout = next(f"in_{n}" for n in range(1000) if in_holdout(f"in_{n}", 50))
    paid = facts(invoice=replace(invoice(status="paid"), id=holdout))
    assert outcome(decide(paid, Rules(holdout_percent=50)))[0] == "skipped:not_open"
    at_night = facts(now=NIGHT, invoice=replace(invoice(), id=holdout))
    assert outcome(decide(at_night, Rules(holdout_percent=50)))[0] == "skipped:holdout"


HELD = next(f"in_{n}" for n in range(1000) if in_holdout(f"in_{n}", 10))
RESUMED = recorded(plan=replace(PLAN, line="+1"))
# One row per kind of decision: whether it got past the holdout draw, and what it drew.
DRAWS = [
    ("sent", facts(), Rules(), TREATED),
    ("deferred for the night", facts(now=NIGHT), Rules(), TREATED),
    ("held out", facts(invoice=replace(invoice(), id=HELD)), Rules(holdout_percent=10), HOLDOUT),
    ("no phone", facts(invoice=invoice(builders.customer(phone=None))), Rules(), None),
    ("paid", facts(invoice=invoice(status="paid")), Rules(), None),
    ("on our STOP list", facts(opted_out_at=NOON), Rules(), None),
    ("the processor's decline", facts(invoice=invoice(payment=PROCESSING)), Rules(), None),
    ("waiting for 3-D Secure", facts(invoice=invoice(payment=CONFIRM)), Rules(), TREATED),
    ("resumed: drawn by the run that planned it", facts(entry=RESUMED), Rules(), None),
    ("resumed at night", facts(now=NIGHT, entry=RESUMED), Rules(), None),
    ("paused", facts(paused="texting paused"), Rules(), TREATED),
    (
        "held out while paused",
        facts(invoice=replace(invoice(), id=HELD), paused="texting paused"),
        Rules(holdout_percent=10),
        HOLDOUT,
    ),
    ("resumed while paused", facts(entry=RESUMED, paused="texting paused"), Rules(), None),
]


@pytest.mark.parametrize(("case", "given", "rules", "group"), DRAWS, ids=[r[0] for r in DRAWS])
def test_a_decision_past_the_holdout_draw_carries_the_group_drawn(case, given, rules, group):
    """The assignment is made at the draw and kept whatever follows (the night, Linq's check
    and refusals): every decision past it says which group, and none before it does."""
    assert decide(given, rules).group == group


def test_the_holdout_hash_is_stable_and_close_to_the_share():
    ids = [f"in_1{n:023d}" for n in range(10_000)]
    chosen = [invoice_id for invoice_id in ids if in_holdout(invoice_id, 10)]
    assert 900 <= len(chosen) <= 1100
    # Stable: the same ids again (a known answer pins the hash across versions of Python).
    assert chosen == [invoice_id for invoice_id in ids if in_holdout(invoice_id, 10)]
    assert in_holdout("in_1Known", 50) is in_holdout("in_1Known", 50)
    # Known answers: pin the hash, so an invoice never changes group between versions.
    assert [n for n in range(100) if in_holdout(f"in_{n}", 10)][:5] == [26, 30, 33, 69, 72]
    assert not any(in_holdout(invoice_id, 0) for invoice_id in ids)


# --- texting paused --------------------------------------------------------------------------

PAUSED = "texting paused by ops@acme.test at 2026-11-26 19:58 UTC: processor incident"


def held(decision: Any) -> tuple[str, str | None]:
    assert isinstance(decision, Hold), decision
    return decision.outcome.action.value, decision.outcome.reason


def test_a_payment_while_texting_is_paused_is_held_with_the_pause_as_its_reason():
    assert held(decide(facts(paused=PAUSED), Rules())) == ("deferred:paused", PAUSED)


@pytest.mark.parametrize(
    ("case", "given", "rules", "expected"),
    [
        # Every guard before the draw still ends the run: nothing waits that would never be sent.
        ("outside the policy", facts(), Rules(attempts=AttemptPolicy.parse("1")), "skipped:policy"),
        ("paid", facts(invoice=invoice(status="paid")), Rules(), "skipped:not_open"),
        (
            "no phone",
            facts(invoice=invoice(builders.customer(phone=None))),
            Rules(),
            "skipped:no_phone",
        ),
        ("on our STOP list", facts(opted_out_at=NOON), Rules(), "skipped:opted_out"),
        (
            "held out",
            facts(invoice=replace(invoice(), id=HELD)),
            Rules(holdout_percent=10),
            "skipped:holdout",
        ),
        ("superseded", facts(job=job(attempt_count=1)), Rules(), "skipped:superseded"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_the_pause_comes_after_the_draw_and_every_guard_before_it(case, given, rules, expected):
    assert outcome(decide(replace(given, paused=PAUSED), rules))[0] == expected


def test_the_pause_comes_before_the_night():
    # Paused at night: held for the pause; once texting is on, the night is judged again.
    assert held(decide(facts(now=NIGHT, paused=PAUSED), Rules()))[0] == "deferred:paused"


def test_a_recorded_plan_whose_text_did_not_go_out_waits_while_texting_is_paused():
    entry = recorded(plan=replace(PLAN, line="+1"))
    assert held(decide(facts(entry=entry, paused=PAUSED), Rules())) == ("deferred:paused", PAUSED)
    # The invoice paid meanwhile, or a STOP: it ends, it does not wait.
    paid = facts(entry=entry, paused=PAUSED, invoice=invoice(status="paid"))
    assert outcome(decide(paid, Rules()))[0] == "skipped:not_open"


def test_a_link_whose_text_went_out_follows_it_while_texting_is_paused():
    entry = recorded(plan=replace(PLAN, line="+1"), chat_id="chat_1")
    assert decide(facts(entry=entry, paused=PAUSED), Rules()) == Send(entry.plan, "chat_1")


# --- whose decline it is, and 3-D Secure ------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["approve_with_id", "issuer_not_available", "reenter_transaction", "try_again_later"]
)
def test_every_decline_that_is_not_the_customers_ends_with_its_code(code):
    given = facts(invoice=invoice(payment=builders.payment_intent(decline_code=code)))
    action, reason = outcome(decide(given, Rules()))
    assert (action, reason.split(" is not")[0]) == (
        "skipped:processor_error",
        f"decline code {code}",
    )


@pytest.mark.parametrize(
    "intent",
    [
        builders.payment_intent(),
        builders.payment_intent(decline_code="insufficient_funds"),
        builders.payment_intent(code="expired_card", decline_code=None),
        builders.payment_intent(decline_code="authentication_required"),
        # Not expanded, or no payment at all: nothing says it is not the customer's.
        "pi_3NotExpanded",
        None,
    ],
)
def test_a_decline_the_customer_can_fix_is_texted(intent):
    given = facts(invoice=invoice(payment=intent))
    assert decide(given, Rules()) == Send(PLAN, group=TREATED)


def test_once_stripe_stops_retrying_the_processors_decline_is_the_customers_to_pay():
    # No retry scheduled: nobody else will try the payment again.
    given = facts(invoice=invoice(payment=PROCESSING, next_payment_attempt=None))
    assert decide(given, Rules()) == Send(PLAN, group=TREATED)


HELD_OUT = next(f"in_{n}" for n in range(1000) if in_holdout(f"in_{n}", 50))


@pytest.mark.parametrize(
    ("case", "given", "rules", "action"),
    [
        ("paid", facts(invoice=invoice(payment=PROCESSING, status="paid")), Rules(), "not_open"),
        (
            "subscription ended",
            facts(
                invoice=invoice(payment=PROCESSING, subscription={"id": "s", "status": "canceled"})
            ),
            Rules(),
            "canceled",
        ),
        (
            "no link",
            facts(invoice=invoice(payment=PROCESSING, hosted_invoice_url=None)),
            Rules(),
            "processor_error",
        ),
        (
            "no phone",
            facts(invoice=invoice(builders.customer(phone=None), payment=PROCESSING)),
            Rules(),
            "processor_error",
        ),
        (
            "on our STOP list",
            facts(invoice=invoice(payment=PROCESSING), opted_out_at=NOON),
            Rules(),
            "processor_error",
        ),
        (
            "in the holdout group",
            facts(invoice=replace(invoice(payment=PROCESSING), id=HELD_OUT)),
            Rules(holdout_percent=50),
            "processor_error",
        ),
        (
            "at night",
            facts(now=NIGHT, invoice=invoice(payment=PROCESSING)),
            Rules(),
            "processor_error",
        ),
    ],
)
def test_the_processors_decline_comes_after_the_invoice_and_before_the_customer(
    case, given, rules, action
):
    decision = decide(given, rules)
    assert isinstance(decision, Finish)
    # Said at once (never deferred), and never drawn: it is no texted payment in either group.
    assert (decision.outcome.action.value, decision.group) == (f"skipped:{action}", None)


def test_a_payment_waiting_for_3d_secure_asks_the_customer_to_confirm_it():
    given = facts(invoice=invoice(payment=CONFIRM))
    assert decide(given, Rules()) == Send(Plan(PLAN.to, ACTION, LINK), group=TREATED)


def test_a_payment_waiting_for_3d_secure_is_the_customers_whatever_its_code_says():
    confirm = builders.payment_intent(status="requires_action", decline_code="try_again_later")
    assert decide(facts(invoice=invoice(payment=confirm)), Rules()) == Send(
        Plan(PLAN.to, ACTION, LINK), group=TREATED
    )


@pytest.mark.parametrize("event_id", ["evt_failed", "evt_action"])
def test_the_wording_is_the_invoices_as_read_never_the_events(event_id):
    # Whichever of Stripe's two events of an attempt is decided on, the invoice says the words.
    for intent, text in ((CONFIRM, ACTION), (builders.payment_intent(), TEXT)):
        given = facts(job=job(event_id=event_id), invoice=invoice(payment=intent))
        assert decide(given, Rules()).plan.text == text


def test_the_3d_secure_text_is_in_the_customers_language():
    spanish = Template.parse("Hola {first_name}, confirma tu pago de {amount}. Responde STOP.")
    rules = Rules(action_templates=replace(ACTION_TEXT, by_language={"es": spanish}))
    customer = builders.customer(preferred_locales=["es-419"])
    decision = decide(facts(invoice=invoice(customer, payment=CONFIRM)), rules)
    assert decision.plan.text == "Hola Jane, confirma tu pago de $25.00. Responde STOP."
    # The failure text is another family: a Spanish customer whose card was declined gets it.
    assert decide(facts(invoice=invoice(customer)), rules).plan.text == TEXT


@pytest.mark.parametrize("intent", [PROCESSING, CONFIRM])
def test_a_recorded_plan_is_sent_as_recorded_whatever_the_payment_says_now(intent):
    entry = recorded(plan=replace(PLAN, line="+1"))
    assert decide(facts(invoice=invoice(payment=intent), entry=entry), Rules()) == Send(entry.plan)


@pytest.mark.parametrize(
    ("case", "newest", "retry", "expected"),
    [
        # The newer attempt will get no text: it does not supersede the older one, which is
        # judged on the invoice as read, the processor's like the newer.
        ("newer not handled yet", None, True, "skipped:processor_error"),
        ("newer being decided", recorded(), True, "skipped:processor_error"),
        ("newer ended so", recorded(ended=Action.PROCESSOR_ERROR), True, "skipped:processor_error"),
        # What was decided or sent for the newer attempt stands.
        ("newer planned", recorded(plan=PLANNED), True, "skipped:superseded"),
        ("newer texted", recorded(PLANNED, "chat_2", Action.SENT), True, "skipped:superseded"),
        # Stripe stopped retrying: the newer attempt is texted, the older superseded.
        ("no retry left", None, False, "skipped:superseded"),
    ],
)
def test_a_newer_attempt_the_processor_declined_supersedes_only_with_a_text(
    case, newest, retry, expected
):
    retry_at = {} if retry else {"next_payment_attempt": None}
    given = facts(job=OLDER, invoice=invoice(payment=PROCESSING, **retry_at), newest=newest)
    assert outcome(decide(given, Rules()))[0] == expected


def test_an_older_attempts_recorded_plan_beside_a_newer_processors_decline_is_sent():
    # Decided when its own decline was the customer's; the newer attempt gets no text.
    given = facts(job=OLDER, invoice=invoice(payment=PROCESSING), entry=recorded(plan=PLANNED))
    assert decide(given, Rules()) == Send(PLANNED)
