"""`./dev mutate`'s reading of mutmut's verdicts and of the list of equivalent mutants: the
score, the targets, and what it names (mutmut itself runs only under ./dev mutate)."""

import io

import pytest

from tools import mutate

RESULTS = """\
    shared.core.decide.x_decide__mutmut_1: killed
    shared.core.decide.x_decide__mutmut_2: survived
    shared.core.decide.x_in_holdout__mutmut_6: survived
    shared.core.decide.xǁPlanǁrender__mutmut_1: timeout
    shared.core.sms.x_sms_cost__mutmut_17: no tests
    shared.core.sms.x_sms_cost__mutmut_18: caught by type check
    shared.core.sms.x_is_gsm7__mutmut_1: segfault
    shared.core.sms.x_is_gsm7__mutmut_2: suspicious
"""
EQUIVALENT = """\
# Mutants no test can kill

- `shared.core.decide.x_in_holdout__mutmut_6`: big-endian is the default.
- `shared.core.decide.x_decide__mutmut_1`: killed since.
- `shared.core.sms.x_sms_cost__mutmut_99`: its function changed.
- `shared.core.text.x_shorten__mutmut_3`: a module that was not run.
not an entry: `shared.core.decide.x_decide__mutmut_2`
"""


def test_each_verdict_is_read_and_only_a_test_noticing_the_mutant_kills_it():
    verdicts = mutate.read_results(RESULTS)
    assert len(verdicts) == 8
    assert verdicts["shared.core.decide.xǁPlanǁrender__mutmut_1"] == "timeout"
    assert mutate.survivors(verdicts) == [
        "shared.core.decide.x_decide__mutmut_2",
        "shared.core.decide.x_in_holdout__mutmut_6",
        "shared.core.sms.x_is_gsm7__mutmut_2",
        "shared.core.sms.x_sms_cost__mutmut_17",
    ]


@pytest.mark.parametrize(
    ("mutant", "module"),
    [
        ("shared.core.decide.x_decide__mutmut_1", "decide"),
        ("shared.core.message.xǁTemplateǁrender__mutmut_3", "message"),
        ("shared.core.quiet_hours.x__clock_change__mutmut_6", "quiet_hours"),
    ],
)
def test_a_mutant_belongs_to_its_module(mutant, module):
    assert mutate.module_of(mutant) == module


def test_the_score_is_killed_over_all_mutants_per_module_and_in_all():
    assert mutate.scores(mutate.read_results(RESULTS)) == [
        mutate.Score("decide", 2, 4),
        mutate.Score("sms", 2, 4),
        mutate.Score("all", 4, 8),
    ]
    assert mutate.Score("decide", 2, 4).percent == 50.0


@pytest.mark.parametrize(
    ("table", "whole_core", "missed"),
    [
        ([mutate.Score("decide", 9, 10), mutate.Score("all", 85, 100)], True, []),
        (
            [mutate.Score("decide", 89, 100), mutate.Score("all", 84, 100)],
            True,
            [
                "decide: 89.0% of its mutants killed, below 90%",
                "all: 84.0% of its mutants killed, below 85%",
            ],
        ),
        # Modules without a target of their own, and all of a partial run, meet any score.
        ([mutate.Score("sms", 0, 10), mutate.Score("all", 0, 10)], False, []),
    ],
)
def test_a_target_missed_is_named(table, whole_core, missed):
    assert mutate.missed(table, whole_core) == missed


def test_the_list_gives_each_equivalent_mutant_a_reason():
    listed = mutate.read_equivalent(EQUIVALENT)
    assert listed == {
        "shared.core.decide.x_in_holdout__mutmut_6": "big-endian is the default.",
        "shared.core.decide.x_decide__mutmut_1": "killed since.",
        "shared.core.sms.x_sms_cost__mutmut_99": "its function changed.",
        "shared.core.text.x_shorten__mutmut_3": "a module that was not run.",
    }


def test_an_entry_that_names_no_survivor_of_a_module_run_is_stale():
    verdicts = mutate.read_results(RESULTS)
    assert mutate.stale(mutate.read_equivalent(EQUIVALENT), verdicts) == [
        "shared.core.decide.x_decide__mutmut_1",
        "shared.core.sms.x_sms_cost__mutmut_99",
    ]


def test_the_edit_of_a_mutant_is_its_removed_and_added_lines():
    diff = (
        "--- shared/core/sms.py\n+++ shared/core/sms.py\n@@ -1,3 +1,3 @@\n"
        " def sms_cost(text):\n-    a > 1\n+    a >= 1\n     return a\n"
    )
    assert mutate.edit_lines(diff) == ["-    a > 1", "+    a >= 1"]


def test_the_report_names_unexplained_survivors_with_their_edit_then_the_table():
    out = io.StringIO()
    verdicts = mutate.read_results(RESULTS)
    edits = {"shared.core.decide.x_decide__mutmut_2": ["-    a > 1", "+    a >= 1"]}
    missed = mutate.write_report(
        out, verdicts, mutate.read_equivalent(EQUIVALENT), edits, whole_core=True
    )
    assert out.getvalue() == (
        "Survived, not on tests/mutants-equivalent.md (3):\n"
        "  shared.core.decide.x_decide__mutmut_2\n"
        "      -    a > 1\n"
        "      +    a >= 1\n"
        "  shared.core.sms.x_is_gsm7__mutmut_2\n"
        "  shared.core.sms.x_sms_cost__mutmut_17\n"
        "On tests/mutants-equivalent.md but not a survivor now:\n"
        "  shared.core.decide.x_decide__mutmut_1\n"
        "  shared.core.sms.x_sms_cost__mutmut_99\n"
        "module          killed  timeout  mutants   score  target  equivalent\n"
        "decide               2        1        4   50.0%     90%  1\n"
        "sms                  2        0        4   50.0%          0\n"
        "all                  4        1        8   50.0%     85%  1\n"
    )
    assert missed == [
        "decide: 50.0% of its mutants killed, below 90%",
        "all: 50.0% of its mutants killed, below 85%",
    ]


def test_a_run_over_some_modules_mutates_only_them_with_the_quick_loop():
    config = mutate.mutmut_config(["decide", "sms"])
    assert "only_mutate =\n    shared/core/decide.py\n    shared/core/sms.py\n" in config
    assert "only_mutate =\n    shared/core/*\n" in mutate.mutmut_config([])
    assert "".join(f"    {arg}\n" for arg in mutate.QUICK_LOOP) in config


def test_an_unknown_module_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        mutate.main(["decide", "nope"])
    assert stopped.value.code == 2
    assert "not a module of shared/core: nope" in capsys.readouterr().err
