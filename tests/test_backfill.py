"""`./dev backfill` in-process: what it finds in Stripe, what it queues, and that the recover
function then applies every rule to it (the ledger included)."""

import base64
import io
import json
import re
import time

import pytest

from shared.adapters.stripe_gateway import Throttle
from standins import builders
from tests.harness import log_lines
from tools.backfill import MAX_SINCE_S, Progress, backfill_event_id, main, parse_since

DAY = 86400
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERASE_LINE_ABOVE = "\x1b[1A\x1b[2K"
BACKFILL_VARIABLES = (
    "STRIPE_API_KEY",
    "STRIPE_API_BASE",
    "GOOGLE_CLOUD_PROJECT",
    "PUBSUB_TOPIC",
    "PUBSUB_EMULATOR_HOST",
)


@pytest.fixture
def pipeline(emulated_pipeline):
    """The command publishes with the product's own publisher: to the Pub/Sub emulator."""
    return emulated_pipeline


@pytest.fixture
def backfill(pipeline, monkeypatch, capsys):
    """Run the command with the pipeline's Stripe and topic; returns (exit code, out, err)."""
    for name in BACKFILL_VARIABLES:
        monkeypatch.setenv(name, pipeline.env[name])

    def run(*argv):
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def failed_invoice(pipeline, customer=None, attempts=(1,), age_s=3600, **invoice):
    """An invoice whose payment failed at each of `attempts`, the last `age_s` ago."""
    data = pipeline.customer_with_invoice(customer, attempt_count=attempts[-1], **invoice)
    events = builders.payment_failed_events(data, attempts, last_created=int(time.time()) - age_s)
    pipeline.stripe.load({"events": events})
    return data


def queued(pipeline):
    """The messages the command published, decoded."""
    return [json.loads(base64.b64decode(m["data"])) for m in pipeline.published()]


def push_all(pipeline):
    """Push every published message to the recover function; returns every JSON log line."""
    pipeline.capsys.readouterr()
    for message in pipeline.published():
        pipeline.push(message)
    return log_lines(pipeline.capsys.readouterr().out)


def recover_all(pipeline):
    """The result lines of pushing every published message."""
    return [line for line in push_all(pipeline) if "action" in line]


# --- --since ----------------------------------------------------------------------------


def test_since_queues_each_open_invoice_once_at_its_latest_failed_attempt(pipeline, backfill):
    retried = failed_invoice(pipeline, attempts=(1, 2))
    paid = failed_invoice(pipeline, status="paid", age_s=2 * 3600)
    failed_invoice(pipeline, age_s=8 * DAY)
    code, out, err = backfill("--since", "7d", "--progress")
    assert code == 0
    assert out.splitlines() == [
        "2 invoice(s) with a failed payment in that time, newest first",
        f"queued {retried['id']} {retried['customer']} attempt 2 $25.00",
        f"skipped {paid['id']}: invoice is paid",
        "1 queued, 1 skipped, 0 not found",
    ]
    # Into a pipe, --progress writes the final bar only.
    assert err.endswith("] 2/2\n")
    [message] = queued(pipeline)
    assert message == {
        "attempt_count": 2,
        "customer_id": retried["customer"],
        "event_id": f"backfill_{retried['id']}_2",
        "invoice_id": retried["id"],
        "livemode": False,
    }


def test_queued_payments_are_recovered_and_a_second_run_texts_nobody_twice(
    pipeline, backfill, linq_api
):
    first, second = failed_invoice(pipeline), failed_invoice(pipeline, attempts=(2,))
    assert backfill("--since", "48h")[0] == 0
    actions = {r["invoice_id"]: (r["action"], r["event_id"]) for r in recover_all(pipeline)}
    assert actions == {
        first["id"]: ("sent", backfill_event_id(first["id"], 1)),
        second["id"]: ("sent", backfill_event_id(second["id"], 2)),
    }
    assert backfill("--since", "48h")[0] == 0
    lines = push_all(pipeline)
    assert [line["message"] for line in lines] == ["duplicate delivery ignored"] * 2
    assert len(linq_api.messages()) == 4


def test_a_failure_the_live_pipeline_texted_is_not_texted_again(pipeline, backfill, linq_api):
    invoice = failed_invoice(pipeline)
    assert [r["action"] for r in pipeline.deliver(builders.payment_failed_event(invoice))] == [
        "sent"
    ]
    backfill("--since", "1d")
    [line] = push_all(pipeline)
    assert (line["action"], line["event_id"]) == (
        "skipped:already_texted",
        backfill_event_id(invoice["id"], 1),
    )
    assert len(linq_api.messages()) == 2


def test_the_recover_function_applies_the_attempt_policy(pipeline, backfill, linq_api):
    pipeline.configure(TEXT_ON_ATTEMPTS="1")
    failed_invoice(pipeline, attempts=(1, 2))
    backfill("--since", "7d")
    assert [r["action"] for r in recover_all(pipeline)] == ["skipped:policy"]
    assert linq_api.messages() == []


def test_dry_run_prints_what_it_would_queue_and_publishes_nothing(pipeline, backfill):
    invoice = failed_invoice(pipeline, amount_due=250000, currency="jpy")
    code, out, _ = backfill("--since", "7d", "--dry-run")
    assert code == 0
    assert f"would queue {invoice['id']} {invoice['customer']} attempt 1 ¥250,000" in out
    assert out.endswith("1 would be queued (dry run: nothing published), 0 skipped, 0 not found\n")
    assert pipeline.published() == []


def test_events_are_read_page_by_page(pipeline, backfill, stripe_api):
    one, two = failed_invoice(pipeline, attempts=range(1, 61)), failed_invoice(pipeline)
    pipeline.stripe.load(
        {
            "events": [
                builders.payment_failed_event(two, created=int(time.time()) - n) for n in range(60)
            ]
        }
    )
    code, out, _ = backfill("--since", "7d", "--dry-run")
    assert code == 0
    assert out.count("would queue") == 2
    assert f"{one['id']} {one['customer']} attempt 60" in out
    pages = [r for r in stripe_api.requests() if r["endpoint"] == "GET /v1/events"]
    assert [r["query"].get("starting_after") for r in pages] == [
        None,
        [pages[0]["response"]["data"][-1]["id"]],
    ]
    assert pages[0]["query"]["type"] == ["invoice.payment_failed"]


# --- invoice ids ------------------------------------------------------------------------


def test_invoice_ids_are_queued_at_their_current_attempt(pipeline, backfill):
    invoice = pipeline.customer_with_invoice(attempt_count=3)
    code, out, _ = backfill(invoice["id"], "in_missing", invoice["id"])
    assert code == 1
    assert out.splitlines() == [
        f"queued {invoice['id']} {invoice['customer']} attempt 3 $25.00",
        "skipped in_missing: not found (Stripe: No such invoice: 'in_missing')",
        "1 queued, 0 skipped, 1 not found",
    ]
    assert [m["event_id"] for m in queued(pipeline)] == [f"backfill_{invoice['id']}_3"]


def test_replay_takes_over_a_run_that_failed(pipeline, backfill, linq_api):
    pipeline.configure(LINQ_SENDER="+12025550199")
    invoice = pipeline.customer_with_invoice()
    assert pipeline.result(invoice)["action"] == "failed"
    pipeline.configure(LINQ_SENDER=None)
    backfill(invoice["id"])
    assert [r["action"] for r in recover_all(pipeline)] == ["sent"]
    assert len(linq_api.messages()) == 2


def test_invoice_never_attempted_is_not_queued(pipeline, backfill):
    invoice = pipeline.customer_with_invoice(attempt_count=0)
    code, out, _ = backfill(invoice["id"])
    assert (code, out.splitlines()[0]) == (
        0,
        f"skipped {invoice['id']}: no payment attempt has failed yet",
    )
    assert pipeline.published() == []


def test_rate_limited_read_waits_and_tries_again(pipeline, backfill, stripe_api):
    invoice = pipeline.customer_with_invoice()
    stripe_api.add_fault(r"/v1/invoices/", status=429)
    assert backfill(invoice["id"], "--dry-run")[0] == 0
    assert [r["status"] for r in stripe_api.requests()] == [429, 200]


def connected_failed_invoice(pipeline, account="acct_1Connected"):
    """An open invoice of a connected account whose payment failed an hour ago (its event is
    the account's, as Stripe keeps it)."""
    customer = builders.customer()
    invoice = builders.invoice(customer)
    event = {**builders.payment_failed_event(invoice), "account": account}
    pipeline.stripe.load(
        {
            "accounts": [
                {"id": account, "customers": [customer], "invoices": [invoice], "events": [event]}
            ]
        }
    )
    return invoice


def test_a_connected_accounts_dead_letter_is_replayed_on_that_account(pipeline, backfill, linq_api):
    # A dead letter of a connected account's payment carries its `account` attribute; the
    # replay reads the invoice on that account and queues the payment with it.
    invoice = connected_failed_invoice(pipeline)
    code, out, _ = backfill("--account", "acct_1Connected", invoice["id"])
    assert code == 0, out
    [message] = pipeline.published()
    assert message["attributes"]["account"] == "acct_1Connected"
    pipeline.capsys.readouterr()
    pipeline.push(message)
    [result] = [line for line in log_lines(pipeline.capsys.readouterr().out) if "action" in line]
    assert (result["action"], result["account"]) == ("sent", "acct_1Connected")
    assert len(linq_api.messages()) == 2


def test_since_reads_a_connected_accounts_events_on_that_account(pipeline, backfill):
    invoice = connected_failed_invoice(pipeline)
    code, out, _ = backfill("--account", "acct_1Connected", "--since", "1d", "--dry-run")
    assert code == 0, out
    assert f"would queue {invoice['id']}" in out
    assert pipeline.published() == []


# --- errors -----------------------------------------------------------------------------


def test_rejected_key_stops_with_a_clear_message(pipeline, backfill, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_revoked0000")
    code, _, err = backfill("--since", "7d")
    assert code == 1
    assert err.startswith("backfill stopped: Stripe rejected the API key: Invalid API Key")
    assert "revoked0000" not in err


@pytest.mark.parametrize("name", ["STRIPE_API_KEY", "GOOGLE_CLOUD_PROJECT"])
def test_missing_environment_is_named(pipeline, backfill, monkeypatch, name):
    monkeypatch.delenv(name)
    code, _, err = backfill("--since", "7d")
    assert code == 2
    assert err.startswith(f"backfill: {name} is required: ")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "give invoice ids (in_...) or --since, one of the two"),
        (["in_1", "--since", "7d"], "give invoice ids (in_...) or --since, one of the two"),
        (["cus_1"], "not invoice ids (in_...): cus_1"),
        (["--since", "31d"], "Stripe keeps events for 30 days, so at most 30d"),
        (["--since", "2w"], "give hours or days, such as 48h or 7d, not '2w'"),
        (["--since", "0d"], "give hours or days"),
        (["--account", "cus_1", "in_1"], "not a connected account id (acct_...): cus_1"),
    ],
)
def test_command_line_mistakes_are_explained(capsys, argv, complaint):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


# --- pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 7 * DAY), ("48h", 48 * 3600), ("30d", MAX_SINCE_S)]
)
def test_since_is_read_in_hours_or_days(text, seconds):
    assert parse_since(text) == seconds


class FakeClock:
    def __init__(self):
        self.now, self.slept = 100.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_throttle_spaces_calls_evenly():
    clock = FakeClock()
    throttle = Throttle(10, clock, clock.sleep)
    throttle.wait()
    throttle.wait()
    clock.now += 0.25
    throttle.wait()
    throttle.wait()
    assert clock.slept == pytest.approx([0.1, 0.1])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_is_redrawn_under_each_line():
    out, err = io.StringIO(), Terminal()
    progress = Progress(2, True, out, err)
    progress.step()
    drawn = len(err.getvalue())
    progress.say("queued in_1")
    around = err.getvalue()[drawn:]
    progress.step()
    progress.close()
    assert out.getvalue() == "queued in_1\n"
    # The bar steps aside (cursor up, line erased) for the line, then is drawn again at 1/2.
    assert around.index(ERASE_LINE_ABOVE) < around.rindex("1/2")
    assert ANSI.sub("", err.getvalue()).rstrip().endswith("] 2/2")


def test_progress_bar_into_a_file_is_the_final_one_only():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(2, True, out, err)
    progress.step()
    progress.say("queued in_1")
    progress.step()
    progress.close()
    assert out.getvalue() == "queued in_1\n"
    assert err.getvalue().endswith("] 2/2\n")
    assert err.getvalue().count("\n") == 1


def test_progress_bar_is_off_unless_asked_or_on_a_terminal():
    out, err = io.StringIO(), io.StringIO()
    progress = Progress(1, False, out, err)
    progress.say("queued in_1")
    progress.step()
    progress.close()
    assert (out.getvalue(), err.getvalue()) == ("queued in_1\n", "")
