"""Webhook to text: from the webhook POST, through Pub/Sub, to the Linq stand-in taking the text."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import requests

from bench import fixtures
from bench.chain import Call, describe, external_seconds, shape, stages, until, within
from bench.env import BenchEnv
from bench.report import Headline, Result, Row, markdown_table, section, verdict
from bench.stats import fmt, median, p99
from standins.stack import signed_webhook

NAME = "webhook→text"
OVERHEAD_TARGET_MS = 150.0
WARM_CALLS, COLD_CALLS = 4, 5
TEXT_CALL = "POST /v3/chats"


@dataclass(frozen=True)
class Sample:
    """One event: when it was posted and acknowledged, when the text arrived, and its calls."""

    posted: float
    acked: float
    text_at: float
    chain: list[list[Call]]

    @property
    def to_text(self) -> list[list[Call]]:
        return until(self.chain, TEXT_CALL)

    @property
    def total_ms(self) -> float:
        return (self.text_at - self.posted) * 1000

    @property
    def external_ms(self) -> float:
        return external_seconds(self.to_text) * 1000

    @property
    def overhead_ms(self) -> float:
        return self.total_ms - self.external_ms

    @property
    def before_first_call_ms(self) -> float:
        return (self.chain[0][0].start - self.posted) * 1000 if self.chain else float("nan")


def measure(env: BenchEnv, quick: bool) -> list[Sample]:
    """One event at a time through the running stack, the first one cold."""
    count = 8 if quick else 40
    batch = fixtures.cases(count)
    fixtures.load(env.stack.stripe, batch)
    env.proxy.reset()
    session = requests.Session()
    url = env.stack.urls["ingest"]
    marks: list[tuple[float, float]] = []
    for index, case in enumerate(batch):
        body, headers = signed_webhook(case.event)
        posted = time.time()
        answer = session.post(url, data=body, headers=headers, timeout=30)
        acked = time.time()
        assert answer.status_code == 200, answer.text
        env.stack.wait_until(
            lambda n=index + 1: len(env.stack.results()) >= n, 30, f"event {index}'s result line"
        )
        marks.append((posted, acked))
        time.sleep(0.05)  # a quiet gap, so each event's calls fall in its own window
    results = env.stack.results()
    texts = {
        m["to"][0]: datetime.fromisoformat(m["created_at"]).timestamp()
        for m in env.stack.linq.messages()
        if m["parts"] and m["parts"][0]["type"] == "text"
    }
    calls = env.calls()
    samples = []
    for index, (case, (posted, acked)) in enumerate(zip(batch, marks, strict=True)):
        end = marks[index + 1][0] if index + 1 < len(marks) else time.time()
        samples.append(Sample(posted, acked, texts[case.phone], stages(within(calls, posted, end))))
    sent = sum(1 for r in results if r.get("action") == "sent")
    assert sent >= count, f"only {sent} of {count} events were sent"
    return samples


def run(env: BenchEnv, quick: bool = False) -> Result:
    return render(measure(env, quick), env.latency_ms)


def _table_row(label: str, group: list[Sample]) -> dict[str, str]:
    """The medians of a group of events (and p99s where it has more than one), in ms."""

    def p50(values: list[float]) -> str:
        return fmt(median(values))

    def tail(values: list[float]) -> str:
        return fmt(p99(values)) if len(group) > 1 else "–"

    totals, overheads = [s.total_ms for s in group], [s.overhead_ms for s in group]
    return {
        "events": label,
        "n": str(len(group)),
        "webhook→text p50 (ms)": p50(totals),
        "p99": tail(totals),
        "external, to text": p50([s.external_ms for s in group]),
        "overhead p50": p50(overheads),
        "overhead p99": tail(overheads),
        "ingest ack": p50([(s.acked - s.posted) * 1000 for s in group]),
        "POST → first external call": p50([s.before_first_call_ms for s in group]),
        "sequential calls (all)": str(max(len(s.chain) for s in group)),
        "to the text": str(max(len(s.to_text) for s in group)),
    }


def _spread(counts: Iterable[int]) -> str:
    """`3 (38×), 4 (1×)`: how many events made how many sequential calls."""
    return ", ".join(f"{calls} ({n}×)" for calls, n in sorted(Counter(counts).items()))


def headlines(
    total_ms: float, external_ms: float, overhead_ms: float, warm_calls: int, cold_calls: int
) -> list[Headline]:
    """The warm median from failed payment to text and our share of it; the calls made one
    after another before the text."""
    return [
        Headline(
            "Failed payment to text sent, median",
            f"{fmt(total_ms, 0)} ms, of which {fmt(overhead_ms, 0)} ms our own work",
            f"our own work at most {OVERHEAD_TARGET_MS:.0f} ms",
            f"waiting on Stripe, Linq and the ledger: {fmt(external_ms, 0)} ms",
            verdict(overhead_ms <= OVERHEAD_TARGET_MS),
        ),
        Headline(
            "Calls made one after another before the text (warm; first after a start)",
            f"{warm_calls}; {cold_calls}",
            f"at most {WARM_CALLS}; {COLD_CALLS}",
            "–",
            verdict(warm_calls <= WARM_CALLS and cold_calls <= COLD_CALLS),
        ),
    ]


def render(samples: list[Sample], latency_ms: float) -> Result:
    """The summary rows, the report section and what the cost benchmark reads."""
    cold, warm = samples[0], samples[1:]
    overhead = median([s.overhead_ms for s in warm])
    total, external = median([s.total_ms for s in warm]), median([s.external_ms for s in warm])
    # The targets count the stages up to the text, the span the overhead is measured over; the
    # outcome is written after the link, after the text by design, so the whole run is printed
    # beside them (why: "How to read the figures" in BENCHMARKS.md).
    longest = max(warm, key=lambda s: (len(s.to_text), len(s.chain)))
    whole = max(warm, key=lambda s: len(s.chain))
    rows = [
        Row(
            "median overhead, warm (ms)",
            fmt(overhead),
            f"total {fmt(total)} − external {fmt(external)}",
            f"≤ {OVERHEAD_TARGET_MS:.0f} ms",
            verdict(overhead <= OVERHEAD_TARGET_MS),
        ),
        *(
            Row(
                f"sequential external calls to the text, {label}",
                str(len(example.to_text)),
                shape(example.to_text),
                f"≤ {target}",
                verdict(len(example.to_text) <= target),
            )
            for label, example, target in (
                ("warm", longest, WARM_CALLS),
                ("cold (first event)", cold, COLD_CALLS),
            )
        ),
        Row(
            "sequential external calls, whole run (warm; cold)",
            f"{len(whole.chain)}; {len(cold.chain)}",
            shape(whole.chain),
            "the outcome is written after the link",
        ),
    ]
    details = section(
        "### 2. Webhook to text",
        f"{len(samples)} signed webhooks posted one at a time to the ingest function of the "
        f"running stack (ingest → Pub/Sub emulator push → recover → stand-ins at {latency_ms:.0f} "
        "ms per call); the first reaches a recover process that has served nothing yet (cold), the "
        "rest are warm. End = the Linq stand-in's `created_at` for the text message. Calls come "
        "from the Stripe and Linq journals (`t_wall`, lasting the injected latency) and from a "
        "recording proxy in front of the Firestore emulator (measured round trip; the emulator has "
        "no injected latency). Calls that overlap in time are one stage. **Overhead = webhook→text "
        "time − Σ over the stages up to the text of the longest call in each stage.** The targets "
        "count those stages (*to the text*); the link, the ledger's record of the chat and its "
        "record of the outcome come after the text and are counted in *sequential calls (all)*, "
        "not in the overhead. Ledger calls are named by what they write (`bench/chain.py`).",
        markdown_table([_table_row("warm", warm), _table_row("cold (first event)", [cold])]),
        "Warm events by sequential calls: to the text "
        + _spread(len(s.to_text) for s in warm)
        + "; whole run "
        + _spread(len(s.chain) for s in warm)
        + ".",
        f"Warm chain (the longest seen): {describe(whole.chain)}",
        f"Cold chain: {describe(cold.chain)}",
    )
    # The cost benchmark bills recover for the time its warm run waits on the outside.
    all_calls = median([external_seconds(s.chain) * 1000 for s in warm])
    summary = headlines(total, external, overhead, len(longest.to_text), len(cold.to_text))
    return Result(NAME, rows, details, {"warm_external_all_ms": all_calls}, summary)
