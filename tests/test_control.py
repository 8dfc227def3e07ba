"""Whether texting is on, pure: the pause and the resume, the surge rule at its edges, and the
guard's word on a new text, one row per answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core import control as controls
from shared.core.control import (
    CHECK_EVERY,
    SURGE_GUARD,
    Check,
    Control,
    Gate,
    Pause,
    SurgeRule,
    Verdict,
    gate,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
RULE = SurgeRule(minimum=50, window=timedelta(minutes=10), share=50)
PAUSED = Control(pause=Pause("processor incident", "ops@acme.test", NOW - timedelta(minutes=3)))


# --- pause and resume ----------------------------------------------------------------------------


def test_a_pause_says_who_why_and_when():
    paused = controls.pause(Control(), "processor incident", "ops@acme.test", NOW)
    assert paused == Control(pause=Pause("processor incident", "ops@acme.test", NOW))
    assert paused.held() == (
        "texting paused by ops@acme.test at 2026-11-26 12:00 UTC: processor incident"
    )
    assert Control().held() is None


def test_a_second_pause_changes_nothing_and_the_first_reason_stands():
    assert controls.pause(PAUSED, "another reason", "someone else", NOW) is None


def test_a_resume_starts_the_guard_afresh_and_only_a_pause_can_be_resumed():
    checked = replace(PAUSED, check=Check(NOW - SECOND, 400, 20, True, Verdict.SURGE))
    resumed = controls.resume(checked, "ops@acme.test", NOW)
    assert resumed == Control(resumed_by="ops@acme.test", resumed_at=NOW)
    assert controls.resume(resumed, "ops@acme.test", NOW) is None
    assert controls.resume(Control(), "ops@acme.test", NOW) is None


# --- the surge rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "successes", "surge"),
    [
        (49, 0, False),  # under SURGE_MIN, whatever the share
        (50, 0, True),
        (50, 49, True),  # 50 of 99: more than half
        (50, 50, False),  # exactly half is not more than half
        (412, 118, True),
        (2_000, 28_000, False),  # a billing day: 6.7 %
    ],
)
def test_a_surge_is_at_least_surge_min_failures_and_more_than_the_share(failures, successes, surge):
    assert RULE.is_surge(failures, successes) is surge


def test_the_share_is_of_every_attempt_the_failed_and_the_paid():
    strict = SurgeRule(minimum=10, window=timedelta(minutes=10), share=80)
    assert strict.is_surge(81, 19)
    assert not strict.is_surge(80, 20)


@pytest.mark.parametrize(
    ("rule", "failures", "enough"),
    [
        # Enough to settle "no surge" for twice the failures: 100 failures need more than 100
        # successes at 50 %.
        (RULE, 50, 100),
        (SurgeRule(50, timedelta(minutes=10), 80), 50, 25),
        (SurgeRule(50, timedelta(minutes=10), 20), 50, 400),
        (SurgeRule(50, timedelta(minutes=10), 30), 51, 238),
    ],
)
def test_the_count_of_successes_stops_once_it_settles_the_question(rule, failures, enough):
    assert rule.enough(failures) == enough
    assert not rule.is_surge(2 * failures, enough)
    assert rule.is_surge(2 * failures, enough - 1)


@pytest.mark.parametrize(
    ("window", "words"),
    [
        (timedelta(minutes=10), "10 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=24), "24 hours"),
        (timedelta(minutes=90), "90 minutes"),
    ],
)
def test_the_window_in_words(window, words):
    assert SurgeRule(50, window, 50).span == words


def test_the_reason_names_the_counts_and_the_window():
    assert RULE.reason(412, 118) == "surge: 412 of 530 payments failed in 10 minutes"


def test_the_window_begins_at_the_last_resume_when_that_is_later():
    assert RULE.start(Control(), NOW) == NOW - RULE.window
    recent = Control(resumed_at=NOW - timedelta(minutes=4))
    assert RULE.start(recent, NOW) == NOW - timedelta(minutes=4)
    long_ago = Control(resumed_at=NOW - timedelta(hours=4))
    assert RULE.start(long_ago, NOW) == NOW - RULE.window


# --- the guard's word on a new text --------------------------------------------------------------


def checked(at: datetime, failures: int, successes: int, verdict: Verdict | None) -> Control:
    return Control(check=Check(at, failures, successes, True, verdict))


GATES = [
    ("texting paused", PAUSED, 0, Gate.PAUSED),
    ("texting paused, under SURGE_MIN", PAUSED, 10, Gate.PAUSED),
    ("under SURGE_MIN: no look at Stripe", Control(), 49, Gate.SEND),
    ("SURGE_MIN reached, never checked", Control(), 50, Gate.CHECK),
    ("a check under way", checked(NOW - SECOND, 50, 0, None), 60, Gate.WAIT),
    (
        "a check under way for a minute: its run died",
        checked(NOW - CHECK_EVERY, 50, 0, None),
        60,
        Gate.CHECK,
    ),
    ("calm within the minute", checked(NOW - SECOND, 50, 600, Verdict.CALM), 90, Gate.SEND),
    ("calm, failures doubled since", checked(NOW - SECOND, 50, 600, Verdict.CALM), 101, Gate.WAIT),
    ("calm, the share now over", checked(NOW - SECOND, 50, 60, Verdict.CALM), 61, Gate.WAIT),
    ("calm a minute ago", checked(NOW - CHECK_EVERY, 50, 600, Verdict.CALM), 60, Gate.CHECK),
    (
        "calm a minute ago, under SURGE_MIN now",
        checked(NOW - CHECK_EVERY, 50, 600, Verdict.CALM),
        20,
        Gate.SEND,
    ),
    (
        "Stripe could not be asked: texting goes on",
        checked(NOW - SECOND, 50, 0, Verdict.UNKNOWN),
        500,
        Gate.SEND,
    ),
    (
        "Stripe could not be asked a minute ago",
        checked(NOW - CHECK_EVERY, 50, 0, Verdict.UNKNOWN),
        500,
        Gate.CHECK,
    ),
    (
        "a surge resumed by hand, the check left",
        checked(NOW - SECOND, 50, 0, Verdict.SURGE),
        60,
        Gate.WAIT,
    ),
]


@pytest.mark.parametrize(
    ("case", "control", "failures", "expected"), GATES, ids=[row[0] for row in GATES]
)
def test_the_guards_word_on_a_new_text(case, control, failures, expected):
    assert gate(control, failures, NOW, RULE) is expected


def test_one_check_begins_and_another_instance_waits_for_it():
    began = controls.begin_check(Control(), 57, NOW, RULE)
    assert began == Control(check=Check(NOW, 57))
    assert controls.begin_check(began, 60, NOW + SECOND, RULE) is None
    assert gate(began, 60, NOW + SECOND, RULE) is Gate.WAIT
    assert controls.begin_check(Control(), 49, NOW, RULE) is None
    assert controls.begin_check(PAUSED, 500, NOW, RULE) is None


def test_a_surge_found_pauses_texting_for_the_guard_with_the_counts():
    began = controls.begin_check(Control(), 412, NOW, RULE)
    ended = controls.end_check(began, NOW, 118, True, RULE, NOW + SECOND)
    assert ended == Control(
        pause=Pause("surge: 412 of 530 payments failed in 10 minutes", SURGE_GUARD, NOW + SECOND),
        check=Check(NOW, 412, 118, True, Verdict.SURGE),
    )
    assert ended.held() == (
        "texting paused by the surge guard at 2026-11-26 12:00 UTC: "
        "surge: 412 of 530 payments failed in 10 minutes"
    )


def test_a_calm_count_stopped_early_lets_texts_go():
    began = controls.begin_check(Control(), 2_000, NOW, RULE)
    ended = controls.end_check(began, NOW, 4_000, False, RULE, NOW + SECOND)
    assert ended == Control(check=Check(NOW, 2_000, 4_000, False, Verdict.CALM))
    assert gate(ended, 3_000, NOW + SECOND, RULE) is Gate.SEND


def test_stripe_unable_to_answer_is_no_reason_to_pause():
    began = controls.begin_check(Control(), 300, NOW, RULE)
    ended = controls.end_check(began, NOW, 0, False, RULE, NOW + SECOND, "Stripe: rate limited")
    assert ended is not None
    assert ended.pause is None
    assert ended.check == Check(NOW, 300, 0, False, Verdict.UNKNOWN, "Stripe: rate limited")


def test_a_check_replaced_meanwhile_records_nothing():
    began = controls.begin_check(Control(), 300, NOW, RULE)
    assert began is not None
    resumed_meanwhile = Control(resumed_by="ops", resumed_at=NOW + SECOND)
    assert controls.end_check(resumed_meanwhile, NOW, 0, True, RULE, NOW + SECOND) is None
    later = controls.begin_check(began, 300, NOW + CHECK_EVERY, RULE)
    assert controls.end_check(later, NOW, 0, True, RULE, NOW + CHECK_EVERY) is None
    ended = controls.end_check(began, NOW, 0, True, RULE, NOW + SECOND)
    assert controls.end_check(ended, NOW, 0, True, RULE, NOW + SECOND) is None


def test_a_surge_found_while_paused_by_hand_keeps_the_operators_reason():
    manual = replace(PAUSED, check=Check(NOW, 400))
    ended = controls.end_check(manual, NOW, 10, True, RULE, NOW + SECOND)
    assert ended is not None
    assert ended.pause == PAUSED.pause
    assert ended.check.verdict is Verdict.SURGE
