"""Choosing the Linq line a text goes out from: the configured line, or the customer's own line by
rendezvous hashing, passing over CRITICAL lines, lines Linq refused and lines at their daily
limit. Measured over 10,000 numbers and 5 lines."""

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import permutations

import pytest

from shared.core.errors import PermanentError, RetryableError
from shared.core.lines import Line
from shared.core.sender import DEFAULT_LINE_DAILY_LIMIT, LineLoad, line_order, pick_sender, utc_day

HEALTHY = Line("+12025550101", "HEALTHY")
CRITICAL = Line("+12025550102", "CRITICAL")
AT_RISK = Line("+12025550103", "AT_RISK")
TO = "+14155550100"
EMPTY = LineLoad(DEFAULT_LINE_DAILY_LIMIT)
FIVE = [Line(f"+1202555020{index}", "HEALTHY") for index in range(1, 6)]
NUMBERS = [f"+1415{index:07d}" for index in range(10_000)]
# Each line's share of 10,000 numbers under a uniform hash is Binomial(10,000, 1/5): 2,000 with a
# standard deviation of 40. Five deviations either side (1,800 to 2,200) is missed by a uniform
# hash with a chance under one in a million per line; a skewed one (say, the first byte of the
# number) misses it by far. The same for the customers of a line that left, spread over the four
# others: Binomial(~2,000, 1/4), a deviation of ~19, so ±5 is ±100.
SHARE_TOLERANCE = 200
SPREAD_TOLERANCE = 100


def first(lines, to=TO, load=EMPTY, **kwargs):
    return pick_sender(lines, to, load, **kwargs)


def owners(lines, load=EMPTY):
    """Each number's line."""
    return {number: first(lines, number, load).number for number in NUMBERS}


@pytest.fixture(scope="module")
def assigned():
    return owners(FIVE)


# --- one number per customer ------------------------------------------------------------------


def test_a_customers_order_is_pinned_to_a_known_answer():
    # The hash is part of the product's promise: changing it would move every customer to
    # another number at the next deploy. sha256, so every instance and every version agree.
    assert [line.number for line in line_order(FIVE, TO)] == [
        "+12025550202",
        "+12025550203",
        "+12025550205",
        "+12025550201",
        "+12025550204",
    ]


def test_a_customer_always_gets_the_same_line_in_whatever_order_linq_lists_them(assigned):
    for number in NUMBERS[:50]:
        chosen = {first(list(order), number).number for order in permutations(FIVE)}
        assert chosen == {assigned[number]}


def test_the_load_spreads_evenly_over_the_lines(assigned):
    shares = Counter(assigned.values())
    assert set(shares) == {line.number for line in FIVE}
    for line, count in shares.items():
        assert abs(count - 2000) <= SHARE_TOLERANCE, (line, count)


@pytest.mark.parametrize("leaving", FIVE, ids=lambda line: line.number)
def test_a_line_that_leaves_moves_only_its_own_customers_spread_over_the_others(assigned, leaving):
    remaining = [line for line in FIVE if line != leaving]
    after = owners(remaining)
    moved = {number for number in NUMBERS if after[number] != assigned[number]}
    its_own = {number for number, line in assigned.items() if line == leaving.number}
    assert moved == its_own
    # About a fifth moved (a modulo over the lines would move four fifths)...
    assert abs(len(moved) - 2000) <= SHARE_TOLERANCE
    # ...each to its own next line, evenly over the four that stay.
    for number in moved:
        assert after[number] == line_order(FIVE, number)[1].number
    spread = Counter(after[number] for number in moved)
    assert set(spread) == {line.number for line in remaining}
    for count in spread.values():
        assert abs(count - len(moved) / 4) <= SPREAD_TOLERANCE


# --- lines that take no new text ----------------------------------------------------------------


def test_a_critical_line_is_passed_over_for_its_customers_only(assigned):
    sick = Line(FIVE[0].number, "CRITICAL")
    lines = [sick, *FIVE[1:]]
    after = owners(lines)
    for number in NUMBERS:
        if assigned[number] == sick.number:
            assert after[number] == line_order(FIVE, number)[1].number
        else:
            assert after[number] == assigned[number]


def test_an_at_risk_line_still_takes_its_customers():
    at_risk_first = next(n for n in NUMBERS if line_order([HEALTHY, AT_RISK], n)[0] == AT_RISK)
    assert first([HEALTHY, AT_RISK], at_risk_first) == AT_RISK


@pytest.mark.parametrize(
    ("sent", "chosen"),
    [
        (None, 0),
        (DEFAULT_LINE_DAILY_LIMIT - 1, 0),
        (DEFAULT_LINE_DAILY_LIMIT, 1),
        (DEFAULT_LINE_DAILY_LIMIT + 7, 1),
    ],
)
def test_a_line_at_its_daily_limit_is_passed_over_for_a_new_text(sent, chosen):
    order = line_order(FIVE, TO)
    counts = {} if sent is None else {order[0].number: sent}
    assert first(FIVE, load=LineLoad(DEFAULT_LINE_DAILY_LIMIT, counts)) == order[chosen]


def test_a_full_lines_customers_spread_over_their_next_lines_and_no_one_else_moves(assigned):
    full = FIVE[3].number
    after = owners(FIVE, LineLoad(10, {full: 10, FIVE[0].number: 9}))
    for number in NUMBERS:
        expected = line_order(FIVE, number)[1] if assigned[number] == full else None
        assert after[number] == (expected.number if expected else assigned[number])


def test_a_line_refused_as_ineligible_gives_way_to_the_customers_next_line():
    order = line_order(FIVE, TO)
    # Not the next line Linq lists: the next in this customer's own order.
    assert first(FIVE, ineligible=[order[0].number]) == order[1]
    assert first(FIVE, ineligible=[order[0].number, order[1].number]) == order[2]


def test_each_reason_passes_a_line_over_and_the_first_usable_in_order_wins():
    order = line_order(FIVE, TO)
    lines = [Line(line.number, "CRITICAL") if line == order[1] else line for line in FIVE]
    load = LineLoad(5, {order[0].number: 5})
    assert first(lines, load=load, ineligible=[order[2].number]) == order[3]


# --- LINQ_SENDER wins ----------------------------------------------------------------------------


def test_the_configured_line_wins_whatever_its_health_count_or_hash():
    full = LineLoad(1, {CRITICAL.number: 10})
    for to in NUMBERS[:50]:
        assert first([HEALTHY, CRITICAL], to, full, configured=CRITICAL.number) == CRITICAL


def test_a_configured_line_missing_from_the_account_is_permanent():
    with pytest.raises(PermanentError, match=r"LINQ_SENDER \+1\*+0199 is not a line"):
        first([HEALTHY], configured="+12025550199")


# --- no usable line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "ineligible", "load", "reason"),
    [
        ([CRITICAL], [], EMPTY, "1 line(s), 1 CRITICAL, 0 refused as ineligible"),
        ([HEALTHY], [HEALTHY.number], EMPTY, "1 line(s), 0 CRITICAL, 1 refused as ineligible"),
        (
            [CRITICAL, HEALTHY],
            [HEALTHY.number],
            EMPTY,
            "2 line(s), 1 CRITICAL, 1 refused as ineligible",
        ),
        ([], [], EMPTY, "the Linq account has no lines to send from"),
        (
            [HEALTHY, AT_RISK],
            [],
            LineLoad(7000, {HEALTHY.number: 7000, AT_RISK.number: 7001}),
            "2 line(s), 0 CRITICAL, 0 refused as ineligible (Linq 403, code 2027), 2 at the "
            "daily limit (LINQ_LINE_DAILY_LIMIT=7000 messages, until 00:00 UTC)",
        ),
        (
            # A line both CRITICAL and full is counted once, as CRITICAL.
            [CRITICAL, HEALTHY, AT_RISK],
            [AT_RISK.number],
            LineLoad(3, {CRITICAL.number: 3, HEALTHY.number: 3, AT_RISK.number: 3}),
            "3 line(s), 1 CRITICAL, 1 refused as ineligible (Linq 403, code 2027), 1 at the "
            "daily limit (LINQ_LINE_DAILY_LIMIT=3 messages, until 00:00 UTC)",
        ),
    ],
)
def test_no_usable_line_is_a_retry_that_says_why(lines, ineligible, load, reason):
    # A line recovers, a reputation mends, a count starts again at midnight UTC, an operator adds
    # a line: never a `failed` payment.
    with pytest.raises(RetryableError) as raised:
        first(lines, load=load, ineligible=ineligible)
    assert raised.value.reason.startswith(f"no usable Linq line: {reason}")
    if "daily limit" not in reason:
        assert "daily limit" not in raised.value.reason


# --- the day a count belongs to -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC), "2026-11-26"),
        (datetime(2026, 11, 27, 0, 0, tzinfo=UTC), "2026-11-27"),
        # 08:30 in Tokyo is still the 26th in UTC; 19:00 in Chicago is already the 27th.
        (datetime(2026, 11, 27, 8, 30, tzinfo=timezone(timedelta(hours=9))), "2026-11-26"),
        (datetime(2026, 11, 26, 19, 0, tzinfo=timezone(timedelta(hours=-6))), "2026-11-27"),
    ],
)
def test_a_count_belongs_to_its_utc_day(moment, day):
    assert utc_day(moment) == day
