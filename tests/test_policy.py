"""TEXT_ON_ATTEMPTS: which failed attempts get a text."""

import pytest

from shared.core.errors import ConfigError
from shared.core.policy import AttemptPolicy


@pytest.mark.parametrize(
    ("text", "allowed", "refused", "shown"),
    [
        ("all", [1, 2, 8], [], "all"),
        (" ALL ", [1, 5], [], "all"),
        ("1", [1], [2, 3], "1"),
        ("1,3", [1, 3], [2, 4], "1,3"),
        (" 3 , 1 ", [1, 3], [2], "1,3"),
        ("2,2,10", [2, 10], [1, 3], "2,10"),
    ],
)
def test_policy_allows_the_listed_attempts(text, allowed, refused, shown):
    policy = AttemptPolicy.parse(text)
    assert [policy.allows(n) for n in allowed] == [True] * len(allowed)
    assert [policy.allows(n) for n in refused] == [False] * len(refused)
    assert str(policy) == shown


@pytest.mark.parametrize(
    "text", ["", "none", "0", "1,0", "-1", "1;3", "1,,3", "1-3", "first", "1.5"]
)
def test_anything_else_is_refused_with_an_example(text):
    with pytest.raises(ConfigError, match=r"^TEXT_ON_ATTEMPTS must be 'all' or") as caught:
        AttemptPolicy.parse(text)
    assert "such as 1,3" in str(caught.value)
