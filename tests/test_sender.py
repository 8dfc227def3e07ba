"""Choosing the Linq line a text goes out from."""

import pytest

from shared.core.errors import PermanentError
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


def test_excluded_lines_are_skipped():
    assert pick_sender([HEALTHY, AT_RISK], None, exclude=[HEALTHY.number]) == AT_RISK


def test_no_usable_line_is_permanent():
    with pytest.raises(PermanentError, match="no usable Linq line"):
        pick_sender([CRITICAL], None)


def test_empty_account_is_permanent():
    with pytest.raises(PermanentError, match="no lines"):
        pick_sender([], None)
