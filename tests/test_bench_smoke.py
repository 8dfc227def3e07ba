"""The benchmark helpers that turn journals into figures: stages, overhead and percentiles."""

import math

from bench.chain import Call, external_seconds, shape, stages, until
from bench.report import BEGIN, END, Result, Row, render, write
from bench.stats import median, p99, percentile, ratio


def test_overlapping_calls_are_one_stage_and_the_longest_counts():
    calls = [
        Call("stripe", "GET /v1/invoices/{id}", 0.000, 0.050),
        Call("ledger", "create (claim)", 0.001, 0.012),
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
