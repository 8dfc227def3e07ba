"""Whether texting is on, pure: the pause and the resume, the surge rule at its edges, and the
guard's word on a new text, one row per answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core import control as controls
from shared.core.control import (
    CHECK_EVERY,
    LOOK_FOR,
    SURGE_GUARD,
    TAKEOVER,
    Check,
    Control,
    Gate,
    Look,
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
    checked = replace(
        PAUSED, check=Check(NOW - SECOND, 400, 20, True, Verdict.SURGE), look=Look(NOW, 500)
    )
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


def checked(at: datetime, failures: int, successes: int, verdict: Verdict) -> Control:
    return Control(check=Check(at, failures, successes, True, verdict))


LOOKING = Look(NOW - SECOND, 70)
# A calm verdict at 50 failures with 600 successes covers up to 100 failures (twice those it
# counted); the guard looks again past 75 (halfway), or once it is a minute old.
CALM = checked(NOW - SECOND, 50, 600, Verdict.CALM)
# 60 successes keep up to 60 failures under 50 %: halfway is 55.
FEW = checked(NOW - SECOND, 50, 60, Verdict.CALM)
MINUTE_OLD = checked(NOW - CHECK_EVERY, 50, 600, Verdict.CALM)
TWO_MINUTES_OLD = checked(NOW - 2 * CHECK_EVERY, 50, 600, Verdict.CALM)
UNKNOWN = checked(NOW - SECOND, 50, 0, Verdict.UNKNOWN)
GATES = [
    ("texting paused", PAUSED, 0, Gate.PAUSED),
    ("texting paused, under SURGE_MIN", PAUSED, 10, Gate.PAUSED),
    ("under SURGE_MIN: no look at Stripe", Control(), 49, Gate.SEND),
    ("SURGE_MIN reached, never checked", Control(), 50, Gate.CHECK),
    ("the first look under way", Control(look=LOOKING), 60, Gate.WAIT),
    (
        "a look under way for TAKEOVER: its checker died",
        Control(look=Look(NOW - TAKEOVER, 50)),
        60,
        Gate.CHECK,
    ),
    ("calm, under halfway to what it covers", CALM, 75, Gate.SEND),
    ("calm, past halfway: look again, this text is covered", CALM, 76, Gate.CHECK),
    ("calm, past what it covers", CALM, 101, Gate.CHECK),
    ("calm, past halfway, another run looking", replace(CALM, look=LOOKING), 90, Gate.SEND),
    ("calm, past what it covers, another run looking", replace(CALM, look=LOOKING), 101, Gate.WAIT),
    ("calm with few successes: halfway to what they keep under the share", FEW, 56, Gate.CHECK),
    ("calm with few successes: under halfway", FEW, 55, Gate.SEND),
    ("calm a minute ago", MINUTE_OLD, 60, Gate.CHECK),
    (
        "calm a minute ago, another run looking: still covered",
        replace(MINUTE_OLD, look=LOOKING),
        60,
        Gate.SEND,
    ),
    (
        "calm two minutes ago, another run looking",
        replace(TWO_MINUTES_OLD, look=LOOKING),
        60,
        Gate.WAIT,
    ),
    ("calm a minute ago, under SURGE_MIN now", MINUTE_OLD, 20, Gate.SEND),
    ("Stripe could not be asked: texting goes on", UNKNOWN, 500, Gate.SEND),
    (
        "Stripe could not be asked a minute ago",
        checked(NOW - CHECK_EVERY, 50, 0, Verdict.UNKNOWN),
        500,
        Gate.CHECK,
    ),
    (
        "a surge verdict without its pause covers nothing",
        checked(NOW - SECOND, 50, 0, Verdict.SURGE),
        60,
        Gate.CHECK,
    ),
]


@pytest.mark.parametrize(
    ("case", "control", "failures", "expected"), GATES, ids=[row[0] for row in GATES]
)
def test_the_guards_word_on_a_new_text(case, control, failures, expected):
    assert gate(control, failures, NOW, RULE) is expected


@pytest.mark.parametrize(
    ("check", "most"),
    [
        (Check(NOW, 50, 600, True, Verdict.CALM), 100),  # twice the failures counted
        (Check(NOW, 50, 60, True, Verdict.CALM), 60),  # what 60 successes keep under 50 %
        (Check(NOW, 50, 0, False, Verdict.UNKNOWN, "Stripe: down"), None),
        (Check(NOW, 50, 0, True, Verdict.SURGE), 0),
    ],
)
def test_what_a_verdict_covers(check, most):
    assert controls.reach(check, RULE) == most


def test_one_look_begins_and_another_instance_waits_for_it():
    began = controls.begin_check(Control(), 57, NOW, RULE)
    assert began == Control(look=Look(NOW, 57))
    assert controls.begin_check(began, 60, NOW + SECOND, RULE) is None
    assert gate(began, 60, NOW + SECOND, RULE) is Gate.WAIT
    assert controls.begin_check(Control(), 49, NOW, RULE) is None
    assert controls.begin_check(PAUSED, 500, NOW, RULE) is None


def test_a_renewing_look_keeps_the_last_verdict_until_its_own():
    renewing = controls.begin_check(CALM, 80, NOW, RULE)
    assert renewing == replace(CALM, look=Look(NOW, 80))
    ended = controls.end_check(renewing, NOW, 900, False, RULE, NOW + SECOND)
    assert ended == Control(check=Check(NOW, 80, 900, False, Verdict.CALM))


def test_a_surge_found_pauses_texting_for_the_guard_with_the_counts():
    began = controls.begin_check(Control(), 412, NOW, RULE)
    ended = controls.end_check(began, NOW, 118, True, RULE, NOW + SECOND)
    assert ended == Control(
        pause=Pause("surge: 412 of 530 payments failed in 10 minutes", SURGE_GUARD, NOW + SECOND),
        check=Check(NOW, 412, 118, True, Verdict.SURGE),
    )
    assert gate(ended, 500, NOW + SECOND, RULE) is Gate.PAUSED
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


def test_a_count_stopped_for_time_before_it_settled_is_no_reason_to_pause():
    began = controls.begin_check(Control(), 300, NOW, RULE)
    ended = controls.end_check(began, NOW, 200, False, RULE, NOW + LOOK_FOR)
    assert ended == Control(
        check=Check(
            NOW, 300, 200, False, Verdict.UNKNOWN, "only 200 payments counted in 20 s of paging"
        )
    )


def test_a_look_replaced_meanwhile_records_nothing():
    began = controls.begin_check(Control(), 300, NOW, RULE)
    assert began is not None
    resumed_meanwhile = Control(resumed_by="ops", resumed_at=NOW + SECOND)
    assert controls.end_check(resumed_meanwhile, NOW, 0, True, RULE, NOW + SECOND) is None
    taken_over = controls.begin_check(began, 300, NOW + TAKEOVER, RULE)
    assert taken_over == Control(look=Look(NOW + TAKEOVER, 300))
    assert controls.end_check(taken_over, NOW, 0, True, RULE, NOW + TAKEOVER) is None
    ended = controls.end_check(began, NOW, 0, True, RULE, NOW + SECOND)
    assert controls.end_check(ended, NOW, 0, True, RULE, NOW + SECOND) is None


def test_a_surge_found_while_paused_by_hand_keeps_the_operators_reason():
    manual = replace(PAUSED, look=Look(NOW, 400))
    ended = controls.end_check(manual, NOW, 10, True, RULE, NOW + SECOND)
    assert ended is not None
    assert ended.pause == PAUSED.pause
    assert ended.check.verdict is Verdict.SURGE


def test_a_verdict_covers_whole_failures_only():
    # 100 successes keep 42 failures under 30 %, not 42.86: a share that does not divide.
    check = Check(NOW, 40, 100, True, Verdict.CALM)
    assert controls.reach(check, SurgeRule(minimum=10, window=RULE.window, share=30)) == 42


def test_a_verdict_covers_up_to_its_reach_and_not_one_failure_more():
    # While another run looks, a text goes only if the last verdict covers it.
    control = Control(check=Check(NOW - SECOND, 50, 600, True, Verdict.CALM), look=Look(NOW, 90))
    assert gate(control, 100, NOW, RULE) is Gate.SEND
    assert gate(control, 101, NOW, RULE) is Gate.WAIT


def test_a_fresh_verdict_that_no_longer_covers_nor_is_half_spent_looks_again():
    # 50 successes reach 50 failures; 55 are past it, yet not half spent (2 x 55 = 60 + 50).
    control = Control(check=Check(NOW - SECOND, 60, 50, True, Verdict.CALM))
    assert gate(control, 55, NOW, RULE) is Gate.CHECK


def test_a_text_waiting_for_a_look_says_why_whole():
    assert controls.waiting(73, RULE) == (
        "surge check: 73 payments failed in the last 10 minutes; retried once the surge guard "
        "has asked Stripe how many succeeded"
    )
