"""Choosing the Linq line a text goes out from."""

import pytest

from shared.core.errors import PermanentError, RetryableError
from shared.core.lines import Line
from shared.core.sender import pick_sender

HEALTHY = Line("+12025550101", "HEALTHY")
CRITICAL = Line("+12025550102", "CRITICAL")
AT_RISK = Line("+12025550103", "AT_RISK")


def test_first_line_that_is_not_critical():
    assert pick_sender([CRITICAL, AT_RISK, HEALTHY], None) == AT_RISK


def test_configured_line_wins_even_when_others_come_first():
    assert pick_sender([HEALTHY, AT_RISK], AT_RISK.number) == AT_RISK


def test_configured_line_missing_from_the_account_is_permanent():
    with pytest.raises(PermanentError, match=r"LINQ_SENDER \+1\*+0199 is not a line"):
        pick_sender([HEALTHY], "+12025550199")


def test_lines_refused_as_ineligible_are_skipped():
    assert pick_sender([HEALTHY, AT_RISK], None, ineligible=[HEALTHY.number]) == AT_RISK


@pytest.mark.parametrize(
    ("lines", "ineligible", "reason"),
    [
        ([CRITICAL], [], "1 line(s), 1 CRITICAL, 0 refused as ineligible"),
        ([HEALTHY], [HEALTHY.number], "1 line(s), 0 CRITICAL, 1 refused as ineligible"),
        ([CRITICAL, HEALTHY], [HEALTHY.number], "2 line(s), 1 CRITICAL, 1 refused as ineligible"),
        # A CRITICAL line counts once, as CRITICAL, whatever Linq said of it.
        ([CRITICAL], [CRITICAL.number], "1 line(s), 1 CRITICAL, 0 refused as ineligible"),
    ],
)
def test_no_usable_line_is_a_retry_that_says_why(lines, ineligible, reason):
    # A line recovers, a reputation mends, an operator adds one: never a `failed` payment.
    with pytest.raises(RetryableError) as raised:
        pick_sender(lines, None, ineligible)
    assert raised.value.reason == f"no usable Linq line: {reason} (Linq 403, code 2027)"
    assert raised.value.detail == {"vendor": "linq"}


def test_an_account_without_lines_is_a_retry_that_says_so():
    with pytest.raises(RetryableError) as raised:
        pick_sender([], None)
    assert raised.value.reason == (
        "no usable Linq line: the Linq account has no lines to send from"
    )
    assert raised.value.detail == {"vendor": "linq"}
