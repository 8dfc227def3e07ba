"""The benchmark helpers that turn journals into figures: stages, overhead and percentiles."""

import datetime as dt
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

import requests

from bench import cold_start, fixtures, ingest
from bench.chain import Call, external_seconds, proxy_calls, shape, stages, until
from bench.journal_proxy import commit_writes
from bench.load import Timings
from bench.report import (
    BEGIN,
    END,
    HEADLINE_HEADER,
    MISS,
    PASS,
    Headline,
    Result,
    Row,
    render,
    run_meta,
    write,
)
from bench.stats import median, p99, percentile, ratio
from bench.sweep import Ticks, night_around, peak_per_second
from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import Due, Lease, Ledger
from shared.adapters.linq_webhook import parse_linq_webhook
from shared.core.entry import Entry, EntryKey, Plan, State
from shared.core.event import FailedPayment, InvoicePaid, from_stripe_event
from shared.core.outcome import Action, Outcome
from standins.stack import REPO, SANDBOX_LINQ_SECRET

# What belongs in git's history, not in BENCHMARKS.md: an issue number, a commit, a time of day.
DIARY = re.compile(
    r"\bissues? \d|#\d|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b|\b\d{1,2}:\d{2}\b"
)


def test_overlapping_calls_are_one_stage_and_the_longest_counts():
    calls = [
        Call("stripe", "GET /v1/invoices/{id}", 0.000, 0.050),
        Call("ledger", "claim", 0.001, 0.012),
        Call("linq", "POST /v3/capability/check_imessage", 0.055, 0.105),
        Call("linq", "POST /v3/chats", 0.110, 0.160),
        Call("linq", "POST /v3/chats/{chat_id}/messages", 0.165, 0.215),
    ]
    grouped = stages(reversed(calls))
    assert shape(grouped) == "ledger∥stripe → linq → linq → linq"
    to_text = until(grouped, "POST /v3/chats")
    assert len(to_text) == 3
    assert round(external_seconds(to_text), 3) == 0.150


def test_percentiles_interpolate_and_ratios_tolerate_zero():
    values = list(range(1, 101))
    assert median(values) == 50.5
    assert percentile(values, 0) == 1
    assert round(p99(values), 2) == 99.01
    assert math.isnan(ratio(10.0, 0.0))


def test_the_generated_block_is_replaced_and_hand_written_text_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\nanalysis by hand\n\n{BEGIN}\nold\n{END}\n\nmore by hand\n")
    result = Result("x", [Row("figure", "1", "2", "≤ 3", "pass")], ["### details"])
    write(path, render([result], {"Date": "today"}))
    text = path.read_text()
    assert "analysis by hand" in text
    assert "more by hand" in text
    assert "old" not in text
    assert "| x | figure | 1 | 2 | ≤ 3 | pass |" in text


def _fixed_run() -> list[str]:
    """The generated block of a small fixed run: two benchmarks, one of them missing a target."""
    starts = Result(
        "cold start",
        [Row("recover: start → first run answered (ms)", "250", "bare 100", "2.50× (≤ 2×)", MISS)],
        ["### 3. Cold start", "", "Each function spawned 9 times."],
        headlines=cold_start.headlines(100.0, 150.0, 250.0),
    )
    cost = Result(
        "cost",
        [Row("per 1,000 recoveries (USD)", "$0.0031", "CPU $0.0004", "list prices")],
        ["### 5. Cost", "", "CPU time from the burst."],
        headlines=[Headline("Google Cloud per 1,000 recoveries", "$0.0031", "–", "CPU $0.0004")],
    )
    machine = {"CPUs": "2", "CPU model": "AMD EPYC", "RAM": "23.5 GiB", "OS": "Linux 6.1"}
    machine |= {"Python": "3.11.7", "Java": 'openjdk version "17.0.15"'}
    started = dt.datetime(2026, 11, 26, 16, 53, tzinfo=dt.UTC)
    return render([starts, cost], machine | run_meta(started, "./dev bench", 532.4, 50.0))


def test_the_block_opens_with_the_users_table_then_the_machine_then_every_figure():
    lines = _fixed_run()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == ["## Results", "## All figures", "### 3. Cold start", "### 5. Cost"]
    table = lines.index("## Results") + 2
    assert lines[table] == "| " + " | ".join(HEADLINE_HEADER) + " |"
    assert lines[table + 2 : table + 5] == [
        "| Cold start to the first answer: ingest | 150 ms (1.50×) | at most 2× the baseline "
        "| a function that does nothing: 100 ms | met |",
        "| Cold start to the first answer: recover, net of its calls to Stripe, Linq and the "
        "ledger | 250 ms (2.50×) | at most 2× the baseline | a function that does nothing: "
        "100 ms | **missed** |",
        "| Google Cloud per 1,000 recoveries | $0.0031 | – | CPU $0.0004 | – |",
    ]
    assert lines[table + 5 : table + 7] == [
        "",
        "**Machine and run:** CPUs: 2; CPU model: AMD EPYC; RAM: 23.5 GiB; OS: Linux 6.1; "
        'Python: 3.11.7; Java: openjdk version "17.0.15"; injected latency: 50 ms per '
        "Stripe/Linq/Slack call; run on: 2026-11-26; command: `./dev bench`; duration: 532 s.",
    ]
    figures = lines.index("## All figures")
    assert "| cold start | recover: start → first run answered (ms) | 250 |" in lines[figures + 4]


def test_neither_the_block_nor_benchmarks_md_keeps_a_diary():
    assert DIARY.findall("issue 24, #12, at df122b4, 16:53 UTC") == [
        "issue 2",
        "#1",
        "df122b4",
        "16:53",
    ]
    assert DIARY.findall("\n".join(_fixed_run())) == []
    assert DIARY.findall((REPO / "BENCHMARKS.md").read_text()) == []


def test_benchmarks_md_opens_with_its_generated_block():
    text = (REPO / "BENCHMARKS.md").read_text()
    title, sentence, block = text.split("\n\n", 3)[:3]
    assert title == "# Benchmarks"
    assert not sentence.startswith(("#", "<!--"))
    assert block == BEGIN


class _Firestore:
    """Answers the ledger's requests as the emulator would, once each, and keeps them as the
    journal proxy sees them. A first commit on `conflict` is refused: the entry exists."""

    def __init__(self, conflict: bool = False) -> None:
        self.journal: list[dict[str, Any]] = []
        self._conflict = conflict

    def request(self, method: str, url: str, timeout: Any = None, json: Any = None) -> Any:
        path = urlsplit(url).path
        entry: dict[str, Any] = {"method": method, "path": path, "t_start": 0.0, "t_end": 0.0}
        if path.endswith(":commit"):
            entry["writes"] = commit_writes(json)
        self.journal.append(entry)
        if path.endswith(":commit") and self._conflict:
            self._conflict = False
            return _answer(409, {"error": {"status": "ALREADY_EXISTS"}})
        if path.endswith(":commit"):
            result = {
                "updateTime": "2026-11-26T00:00:00Z",
                "transformResults": [{"integerValue": "1"}],
            }
            return _answer(200, {"writeResults": [result]})
        if path.endswith(":runQuery"):
            return _answer(200, [{"readTime": "2026-11-26T00:00:00Z"}])
        if path.endswith(":runAggregationQuery"):
            counted = {"aggregateFields": {"documents": {"integerValue": "3"}}}
            return _answer(200, [{"result": counted}])
        document = {"fields": {"state": {"stringValue": "failed"}}, "updateTime": "v1"}
        return _answer(200, {"name": path, **document})


def _answer(status: int, body: Any) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = status, json.dumps(body).encode()
    return answer


def test_every_ledger_call_is_named_by_what_it_writes(monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    job = FailedPayment("evt_1", "in_1", "cus_1", 1, livemode=False)
    now = dt.datetime.now(dt.UTC)
    firestore = _Firestore()
    ledger = Ledger(FirestoreDocuments("p", "d", session=firestore))  # type: ignore[arg-type]
    lease = ledger.claim(EntryKey("in_1", 1), job, "m1", "run1")
    assert isinstance(lease, Lease)
    lease = ledger.record_plan(lease, Plan("+14155550100", "Hi", "https://x.test", "+1202"))
    lease = ledger.record_text(lease, "chat_1")
    ledger.finish(lease, Outcome(Action.SENT, chat_id="chat_1"))
    ledger.defer(lease, Outcome(Action.DEFERRED, "night"), now, ("America/Chicago",))
    ledger.pause(lease, Outcome(Action.PAUSED, "texting paused"))
    ledger.end_lease(lease)
    ledger.release(Due("v1", Entry(EntryKey("in_1", 1), State.DEFERRED, due_at=now)), "token")
    ledger.due(now, 10)
    ledger.count_sent("+12025550101")
    ledger.sent_today()
    assert ledger.failures_since(now) == 3
    ledger.pause_texting("incident", "ops")
    names = [call.what for call in proxy_calls("ledger", firestore.journal)]
    assert names == [
        "claim",
        "plan",
        "chat recorded",
        "outcome",
        "defer",
        "pause",
        "end lease",
        "mark released",
        "query",
        "query",
        "query",
        "count sent",
        "query",
        "count",
        "read",
        "control",
    ]


def test_a_takeover_is_a_refused_claim_a_read_and_a_take_over(monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    firestore = _Firestore(conflict=True)
    ledger = Ledger(FirestoreDocuments("p", "d", session=firestore))  # type: ignore[arg-type]
    job = FailedPayment("evt_2", "in_2", "cus_2", 1, livemode=False)
    lease = ledger.claim(EntryKey("in_2", 1), job, "m2", "run2")
    assert isinstance(lease, Lease)
    assert (lease.entry.plan, lease.entry.chat_id, lease.took_over_from) == (None, None, None)
    names = [call.what for call in proxy_calls("ledger", firestore.journal)]
    assert names == ["claim", "read", "take over"]


def test_the_peak_rate_is_the_most_arrivals_in_any_one_second_window():
    assert peak_per_second([]) == 0
    assert peak_per_second([0.0, 0.5, 0.99, 1.0, 1.5, 3.0]) == 3
    assert peak_per_second([2.0, 0.0, 0.1, 0.2]) == 3


def test_a_tick_is_billed_its_wait_plus_its_cpu_at_the_deployed_share_of_a_vcpu():
    # 50 ms wall of which 5 ms CPU: 45 ms waiting + 5 ms / 0.167 vCPU, rounded up to 100 ms.
    ticks = Ticks(walls=[0.05, 0.05, 0.05], cpu=0.015)
    assert round(ticks.request_s(), 4) == round(0.045 + 0.005 / 0.167, 4)
    per_tick = 0.1 * (0.167 * 0.000024 + 0.25 * 0.0000025) + 0.40 / 1e6
    assert math.isclose(ticks.cost_per_tick(), per_tick)


def test_the_night_window_holds_the_present_moment_for_the_recipients():
    now = dt.datetime(2026, 11, 26, 3, 30, tzinfo=dt.UTC)  # 19:30 in Los Angeles
    assert night_around(now) == "18:30-21:30"


def test_the_ingest_bench_sends_first_try_payments_and_linq_deliveries_the_product_accepts() -> (
    None
):
    first, second = fixtures.cases(2)
    paid = from_stripe_event(fixtures.first_try_paid(first))
    assert isinstance(paid, InvoicePaid)
    assert paid.first_try
    [(method, body, headers)] = fixtures.linq_signed_posts([fixtures.linq_delivered(second)])
    assert method == "POST"
    assert body is not None
    event = parse_linq_webhook(body, headers, SANDBOX_LINQ_SECRET)
    assert event.event_type == "message.delivered"
    assert event.event["data"]["idempotency_key"] == f"{second.invoice_id}-1-text"


def _summary(p50: float, p99: float) -> dict[str, float]:
    return {"p50": p50, "p90": p50, "p99": p99, "n": 3.0}


def test_the_ingest_rows_hold_each_function_to_the_floor_and_count_what_first_tries_published() -> (
    None
):
    latency = {
        "bare": _summary(1.0, 2.0),
        "ingest": _summary(3.0, 10.0),
        "paid": _summary(6.5, 3.0),  # 5.5 ms over the floor at p50: a miss
        "linq": _summary(0.5, 30.0),  # under the floor at p50; 28 ms over at p99: a miss
        "sync": _summary(200.0, 300.0),
    }
    timings = {name: Timings([0.001], [200], 1.0) for name in latency}
    measured = ingest.Measured(ingest.FULL, latency, timings, 3100, 1, 1)
    rows = {row.figure: row for row in ingest.render(measured, 50.0).rows}
    verdicts = {figure: row.verdict for figure, row in rows.items() if "ack p" in figure}
    assert verdicts == {
        "ack p50 (ms)": PASS,
        "ack p99 (ms)": PASS,
        "ack p50 vs synchronous handler": PASS,
        "first-try invoice.paid: ack p50 (ms)": MISS,
        "first-try invoice.paid: ack p99 (ms)": PASS,
        "Linq intake: ack p50 (ms)": PASS,
        "Linq intake: ack p99 (ms)": MISS,
    }
    assert rows["first-try invoice.paid: ack p99 (ms)"].target == "+1.00 ms (≤ +25)"
    assert rows["Linq intake: ack p50 (ms)"].target == "−0.50 ms (≤ +5)"
    assert rows["Linq intake: ack p99 (ms)"].target == "+28.00 ms (≤ +25)"
    published = rows["first-try invoice.paid: messages published"]
    assert (published.value, published.verdict) == ("1", MISS)
