"""`./dev report`: the lift and its interval, and the report's figures from a ledger written into
the Firestore emulator (several attempts per invoice, every group, several currencies, paid and
unpaid, deferred, --since), its CSV files and chart, and its exit codes."""

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.report_ledger import write_ledger
from shared.core.entry import Entry, EntryKey, Payment, Plan, State
from shared.core.outcome import Action
from tools.lift import MIN_GROUP_INVOICES, newcombe, rate_interval, too_small
from tools.report import PAGE_SIZE, SANDBOX_REPORT, main, open_ledger, read
from tools.tally import NO_OUTCOME, Tally

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "dunning"
PHONE = "+14155550123"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# One moment for the whole fixture, so every gap between two of its times is exact; noon UTC, so
# which day each payment falls on does not depend on when the test runs.
NOW = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)


# --- the lift --------------------------------------------------------------------------------


def test_lift_and_its_interval_match_the_hand_computed_example():
    # Texted 56 of 70 paid (0.8), holdout 48 of 80 (0.6): Newcombe's (1998) example (a).
    # z = 1.95996, z² = 3.84146. Wilson, 56/70: centre (56 + 1.92073) / 73.84146 = 0.78439,
    # half 1.95996 * sqrt(70 * 0.8 * 0.2 + 0.96037) / 73.84146 = 1.95996 * 3.48717 / 73.84146
    # = 0.09256, so 0.69183 to 0.87695. Wilson, 48/80: centre 49.92073 / 83.84146 = 0.59542,
    # half 1.95996 * sqrt(80 * 0.6 * 0.4 + 0.96037) / 83.84146 = 0.10496, so 0.49045 to 0.70038.
    # Difference 0.2; low  = 0.2 - sqrt((0.8 - 0.69183)² + (0.70038 - 0.6)²)
    #                      = 0.2 - sqrt(0.011701 + 0.010076) = 0.2 - 0.14757 = 0.0524;
    #                 high = 0.2 + sqrt((0.87695 - 0.8)² + (0.6 - 0.49045)²)
    #                      = 0.2 + sqrt(0.005921 + 0.012001) = 0.2 + 0.13387 = 0.3339,
    # as the paper's table gives for method 10.
    lift = newcombe(56, 70, 48, 80)
    assert (round(lift.difference, 4), round(lift.low, 4), round(lift.high, 4)) == (
        0.2,
        0.0524,
        0.3339,
    )


def test_a_group_with_no_payment_still_has_an_interval_of_some_width():
    # Newcombe's example (d), 5/56 against 0/29: -0.0381 to 0.1926 (Wald would say 0.0125 to
    # 0.1661, as if the 0 of 29 were known exactly).
    lift = newcombe(5, 56, 0, 29)
    assert (round(lift.low, 4), round(lift.high, 4)) == (-0.0381, 0.1926)


@pytest.mark.parametrize(
    ("texted", "holdout", "why_not"),
    [
        (30, 30, None),
        (1000, 30, None),
        (30, 29, "holdout has 29 invoices; each group needs at least 30"),
        (29, 500, "texted has 29 invoices; each group needs at least 30"),
        (1, 0, "texted has 1 invoice and holdout has 0 invoices; each group needs at least 30"),
    ],
)
def test_not_enough_data_below_thirty_invoices_in_either_group(texted, holdout, why_not):
    assert MIN_GROUP_INVOICES == 30
    assert too_small({"texted": texted, "holdout": holdout}) == why_not


# --- a ledger in the emulator ----------------------------------------------------------------


def ago(days=0.0, minutes=0.0):
    """`days` and `minutes` before NOW (negative minutes: after `days` ago)."""
    return NOW - dt.timedelta(days=days, minutes=minutes)


def day(moment):
    return moment.date().isoformat()


PLAN = Plan(PHONE, "Hi Jane", "https://pay.example/x", "+12025550100")


def entry(invoice, attempt, created, action=None, group=None, state=None, **fields):
    """A ledger entry as the product writes it: once it reached the holdout draw, the group it
    was assigned, and once it was to be texted, the plan (a phone number) it records."""
    return Entry(
        EntryKey(invoice, attempt),
        State(state or ("done" if action else "active")),
        customer_id=f"cus_{invoice}",
        created_at=created,
        action=Action(action) if action else None,
        group=group,
        **fields,
    )


def sent(invoice, attempt, created, texted_at=None, **fields):
    texted_at = texted_at or created
    return entry(
        invoice, attempt, created, "sent", "treated", plan=PLAN, texted_at=texted_at, **fields
    )


def treated(invoice, attempt, created, action, **fields):
    """Past the draw, and not texted: unreachable, deferred, refused, failed."""
    return entry(invoice, attempt, created, action, "treated", **fields)


def held(invoice, attempt, created, **fields):
    return entry(invoice, attempt, created, "skipped:holdout", "holdout", **fields)


def paid(invoice, at, amount, currency, group):
    """The payment, as the recover function records it."""
    return Payment(invoice, at, amount, currency, "evt_paid", "msg_paid", group, attempt=1)


# 15 invoices, 19 entries and 8 payments. in_T1 and in_T10 test that an invoice's documents stay
# together.
LEDGER = [
    sent("in_T1", 1, ago(2), decline_code="insufficient_funds"),
    paid("in_T1", ago(2, -90), 2500, "usd", "treated"),
    # Deferred for the night, then texted; the invoice failed again and was paid 30 minutes
    # after its second text.
    sent(
        "in_T10",
        1,
        ago(3),
        texted_at=ago(3, -480),
        due_at=ago(3, -480),
        decline_code="expired_card",
    ),
    sent("in_T10", 2, ago(1), decline_code="insufficient_funds"),
    paid("in_T10", ago(1, -30), 1000, "eur", "treated"),
    sent("in_T2", 1, ago(5)),
    # Not drawn at its first attempt (no phone), treated at its second; the decline code of its
    # first failure is the invoice's.
    entry("in_T3", 1, ago(6), "skipped:no_phone", decline_code="generic_decline"),
    sent("in_T3", 2, ago(3), decline_code="insufficient_funds"),
    # Treated, never texted: an unreachable number that paid; a night-time failure paid before
    # the morning; one still waiting for its morning.
    treated("in_U1", 1, ago(2), "skipped:unreachable", plan=PLAN),
    paid("in_U1", ago(1), 2000, "usd", "treated"),
    treated("in_D1", 1, ago(2), "skipped:not_open", due_at=ago(2, -300)),
    paid("in_D1", ago(2, -120), 1500, "usd", "treated"),
    treated("in_D2", 1, ago(minutes=120), "deferred:quiet_hours", due_at=ago(minutes=-300)),
    held("in_H1", 1, ago(4), decline_code="insufficient_funds"),
    paid("in_H1", ago(3), 5000, "usd", "holdout"),
    held("in_H2", 1, ago(4)),
    held("in_H2", 2, ago(1)),
    # Never reached the draw: in neither group.
    entry("in_N1", 1, ago(2), "skipped:no_phone", decline_code="insufficient_funds"),
    paid("in_N1", ago(1), 3000, "jpy", "not_assigned"),
    entry("in_N2", 1, ago(2), "skipped:opted_out"),
    entry("in_N3", 1, ago(2), "failed", state="failed"),
    entry("in_N4", 1, ago(minutes=60)),
    # Outside --since 30d.
    sent("in_OLD", 1, ago(40)),
    paid("in_OLD", ago(40, -600), 1500, "gbp", "treated"),
    # Texted 35 days ago and paid 2 days ago, 47,520 minutes later; its second attempt, inside
    # --since 30d, brings the whole invoice in.
    sent("in_X", 1, ago(35)),
    entry("in_X", 2, ago(3), "skipped:policy"),
    paid("in_X", ago(2), 700, "usd", "treated"),
]

EXPECTED_ALL = """\
Recovery report: projects/{project}/databases/dunning, dunning_sends, all entries

Failed payments           19 entries, 15 invoices
  Texted                  7 entries, 6 invoices
  Not texted              12 entries
    skipped:holdout       3
    skipped:no_phone      2
    skipped:not_open      1
    skipped:opted_out     1
    skipped:policy        1
    skipped:unreachable   1
    (no outcome yet)      1
    deferred:quiet_hours  1
    failed                1
Deferred for quiet hours  3 of these 19 entries: 1 texted, 2 not

Recovered, as assigned    paid of invoices, rate: amount
  treated                 6 of 9, 66.7 %: €10.00, £15.00, $67.00
  holdout                 1 of 2, 50.0 %: $50.00
  not_assigned            1 of 4, 25.0 %: ¥3,000

By first decline code     paid of invoices, rate, as assigned
  (none recorded)         treated 4 of 6, 66.7 %; holdout 0 of 1, 0.0 %; not_assigned 0 of 3, \
0.0 %
  insufficient_funds      treated 1 of 1, 100.0 %; holdout 1 of 1, 100.0 %; not_assigned 1 of 1, \
100.0 %
  expired_card            treated 1 of 1, 100.0 %
  generic_decline         treated 0 of 1, 0.0 %

Lift (treated - holdout)  not enough data: treated has 9 invoices and holdout has 2 invoices; \
each group needs at least 30
Per protocol (texted)     4 of 6, 66.7 % (6 of 9 treated invoices were texted)
Text to payment           median 345 min, p90 33,444 min (4 payments)
"""


@pytest.fixture
def ledger(firestore, monkeypatch):
    """A project of its own in the emulator, the report's variables pointing at it; returns a
    writer of ledger entries and the project."""
    project = f"report-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    monkeypatch.setenv("FIRESTORE_DATABASE", DATABASE)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)

    def write(entries):
        return write_ledger(firestore.host, project, DATABASE, entries)

    write.project = project
    return write


@pytest.fixture
def report(capsys):
    def run(*argv):
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_report_of_a_ledger_with_every_group_currency_and_attempt(ledger, report):
    assert ledger(LEDGER) == 27
    code, out, err = report()
    assert (code, err) == (0, "")
    assert out == EXPECTED_ALL.format(project=ledger.project)
    assert PHONE not in out


def test_an_invoice_split_across_pages_is_still_one_invoice(ledger, report, monkeypatch):
    ledger(LEDGER)
    # Two documents a query: in_T10, in_T3, in_H2 and in_X each straddle two pages.
    monkeypatch.setattr("tools.report.PAGE_SIZE", 2)
    assert report() == (0, EXPECTED_ALL.format(project=ledger.project), "")


def test_since_keeps_recent_entries_and_reads_each_invoice_whole(ledger, report):
    ledger(LEDGER)
    code, out, _ = report("--since", "30d")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        f"Recovery report: projects/{ledger.project}/databases/dunning, dunning_sends, "
        "entries created since "
    )
    # in_OLD is gone; of in_X only the second attempt is counted, but the invoice is, with its
    # group (drawn at its first attempt) and its payment: 5 of the 8 treated invoices paid,
    # $25 + $20 + $15 + $7 and €10.
    assert lines[2:6] == [
        "Failed payments           17 entries, 14 invoices",
        "  Texted                  5 entries, 5 invoices",
        "  Not texted              12 entries",
        "    skipped:holdout       3",
    ]
    assert "  treated                 5 of 8, 62.5 %: €10.00, $67.00" in lines
    # 30, 90 and 47,520 minutes.
    assert lines[-1] == "Text to payment           median 90 min, p90 38,034 min (3 payments)"


def test_report_of_groups_big_enough_gives_the_lift_and_its_interval(ledger, report):
    # 40 treated invoices, all texted, 20 paid (50 %); 30 held out, 6 paid (20 %).
    entries = [sent(f"in_t{n:03d}", 1, ago(1)) for n in range(40)]
    entries += [paid(f"in_t{n:03d}", ago(0.5), 100, "usd", "treated") for n in range(20)]
    entries += [held(f"in_h{n:03d}", 1, ago(1)) for n in range(30)]
    entries += [paid(f"in_h{n:03d}", ago(0.5), 100, "usd", "holdout") for n in range(6)]
    ledger(entries)
    code, out, _ = report()
    assert code == 0
    lines = out.splitlines()
    assert (
        "Lift (treated - holdout)  +30.0 points, 95 % CI +7.2 to +48.1 (Newcombe hybrid score)"
        in lines
    )
    assert "Per protocol (texted)     20 of 40, 50.0 % (40 of 40 treated invoices were texted)" in (
        lines
    )
    assert "  texted - holdout        +30.0 points: biased, not the lift" in lines


def texts_that_change_nothing():
    """A ledger built so that the texts change nothing: whether a customer pays depends only on
    their number being a good one (4 in 5 pay) or a dead one (1 in 5), never on a text, and the
    draw splits both kinds evenly. 100 invoices in each arm; half the customers' numbers dead.

    Treated: the 50 dead numbers are unreachable, never texted (10 pay); of the 50 good ones, 8
    failed at night and paid before their morning (deferred, then `skipped:not_open`: never
    texted), 32 were texted and paid, 10 texted and did not pay. Held out: 40 of 50 and 10 of
    50 pay. Both arms: 50 of 100 paid.
    """
    documents = []

    def invoices(prefix, count, write, pays):
        for n in range(count):
            invoice = f"in_{prefix}{n:03d}"
            documents.append(write(invoice))
            if pays:
                group = "holdout" if prefix.startswith("h") else "treated"
                documents.append(paid(invoice, ago(0.5), 2500, "usd", group))

    def dead(invoice):
        return treated(invoice, 1, ago(1), "skipped:unreachable", reason="no iMessage, SMS or RCS")

    def overnight(invoice):
        return treated(invoice, 1, ago(1), "skipped:not_open", due_at=ago(1, -300))

    def texted(invoice):
        return sent(invoice, 1, ago(1))

    def holdout(invoice):
        return held(invoice, 1, ago(1))

    invoices("tdp", 10, dead, pays=True)
    invoices("tdu", 40, dead, pays=False)
    invoices("tnp", 8, overnight, pays=True)
    invoices("ttp", 32, texted, pays=True)
    invoices("ttu", 10, texted, pays=False)
    invoices("hgp", 40, holdout, pays=True)
    invoices("hgu", 10, holdout, pays=False)
    invoices("hdp", 10, holdout, pays=True)
    invoices("hdu", 40, holdout, pays=False)
    return documents


def test_texts_that_change_nothing_show_no_lift(ledger, report):
    """Issue 20: the lift compared the texted invoices with the holdout. A treated customer whose
    number is dead, or who paid overnight before the deferred text, left the texted group; the
    holdout kept its own. Here the texts change nothing, and that comparison said +26.2 points
    (32 of 42 texted invoices paid against 50 of 100 held out), CI +8.6 to +40.3: a clear answer,
    and a wrong one. As assigned at the draw, 50 of 100 against 50 of 100: no lift, and an
    interval around 0 (each arm's Wilson interval is 0.5 ± 0.0962; the difference's, ± 0.1360).
    The texted-only figure follows, said to be biased."""
    ledger(texts_that_change_nothing())
    code, out, _ = report()
    assert code == 0
    lines = out.splitlines()
    assert "  treated                 50 of 100, 50.0 %: $1,250.00" in lines
    assert "  holdout                 50 of 100, 50.0 %: $1,250.00" in lines
    [lift] = [line for line in lines if line.startswith("Lift")]
    assert lift == (
        "Lift (treated - holdout)  +0.0 points, 95 % CI -13.6 to +13.6 (Newcombe hybrid score)"
    )
    per_protocol = "32 of 42, 76.2 % (42 of 100 treated invoices were texted)"
    assert f"Per protocol (texted)     {per_protocol}" in lines
    assert "  texted - holdout        +26.2 points: biased, not the lift" in lines


def test_out_writes_the_figures_as_csv_and_a_png_chart(ledger, report, tmp_path):
    ledger(LEDGER)
    out_dir = tmp_path / "figures"
    code, out, _ = report("--out", str(out_dir))
    assert code == 0
    assert sorted(path.name for path in out_dir.iterdir()) == [
        "outcomes.csv",
        "recovered.csv",
        "recovered_by_day.csv",
        "recovered_by_decline_code.csv",
        "recovery.png",
        "report.txt",
        "summary.csv",
    ]

    def rows(name):
        with (out_dir / name).open(newline="") as handle:
            return list(csv.reader(handle))

    # Wilson's interval of 6 of 9: centre (6 + 1.92073) / 12.84146 = 0.61681, half
    # 1.95996 * sqrt(2 + 0.96037) / 12.84146 = 0.26261; of 1 of 2: 0.5 ± 0.40547.
    assert dict(rows("summary.csv")[1:]) == {
        "entries": "19",
        "invoices": "15",
        "texts_sent": "7",
        "texted_invoices": "6",
        "entries_not_texted": "12",
        "entries_deferred": "3",
        "entries_deferred_texted": "1",
        "treated_invoices": "9",
        "treated_paid": "6",
        "treated_rate": "0.6667",
        "treated_rate_low_95": "0.3542",
        "treated_rate_high_95": "0.8794",
        "holdout_invoices": "2",
        "holdout_paid": "1",
        "holdout_rate": "0.5000",
        "holdout_rate_low_95": "0.0945",
        "holdout_rate_high_95": "0.9055",
        "not_assigned_invoices": "4",
        "not_assigned_paid": "1",
        "not_assigned_rate": "0.2500",
        "lift": "",
        "lift_low_95": "",
        "lift_high_95": "",
        "lift_note": "treated has 9 invoices and holdout has 2 invoices; each group needs at "
        "least 30",
        "per_protocol_texted_invoices": "6",
        "per_protocol_texted_paid": "4",
        "per_protocol_texted_rate": "0.6667",
        "minutes_to_pay_median": "345.0",
        "minutes_to_pay_p90": "33444.0",
        "payments_timed": "4",
    }
    assert rows("outcomes.csv") == [
        ["action", "entries"],
        ["(no outcome yet)", "1"],
        ["deferred:quiet_hours", "1"],
        ["failed", "1"],
        ["sent", "7"],
        ["skipped:holdout", "3"],
        ["skipped:no_phone", "2"],
        ["skipped:not_open", "1"],
        ["skipped:opted_out", "1"],
        ["skipped:policy", "1"],
        ["skipped:unreachable", "1"],
    ]
    assert rows("recovered.csv") == [
        ["group", "currency", "invoices", "amount_minor", "amount"],
        ["holdout", "usd", "1", "5000", "50.00"],
        ["not_assigned", "jpy", "1", "3000", "3000"],
        ["treated", "eur", "1", "1000", "10.00"],
        ["treated", "gbp", "1", "1500", "15.00"],
        ["treated", "usd", "4", "6700", "67.00"],
    ]
    assert sorted(rows("recovered_by_day.csv")[1:]) == sorted(
        [
            # in_T1 ($25 at 13:30), in_D1 ($15 at 14:00) and in_X ($7 at noon) two days ago.
            [day(ago(2)), "treated", "usd", "3", "4700", "47.00"],
            [day(ago(1)), "treated", "eur", "1", "1000", "10.00"],
            [day(ago(1)), "treated", "usd", "1", "2000", "20.00"],
            [day(ago(3)), "holdout", "usd", "1", "5000", "50.00"],
            [day(ago(1)), "not_assigned", "jpy", "1", "3000", "3000"],
            [day(ago(40)), "treated", "gbp", "1", "1500", "15.00"],
        ]
    )
    assert rows("recovered_by_decline_code.csv") == [
        ["decline_code", "group", "invoices", "paid", "rate"],
        ["(none recorded)", "treated", "6", "4", "0.6667"],
        ["(none recorded)", "holdout", "1", "0", "0.0000"],
        ["(none recorded)", "not_assigned", "3", "0", "0.0000"],
        ["insufficient_funds", "treated", "1", "1", "1.0000"],
        ["insufficient_funds", "holdout", "1", "1", "1.0000"],
        ["insufficient_funds", "not_assigned", "1", "1", "1.0000"],
        ["expired_card", "treated", "1", "1", "1.0000"],
        ["generic_decline", "treated", "1", "0", "0.0000"],
    ]
    assert (out_dir / "recovery.png").read_bytes()[:8] == PNG_SIGNATURE
    assert out.splitlines()[-1].startswith(f"Written: {out_dir / 'summary.csv'}, ")
    for path in out_dir.iterdir():
        assert PHONE.encode() not in path.read_bytes()


def test_a_kept_report_prints_again_without_a_ledger_or_a_project(ledger, report, tmp_path):
    """What `./dev sandbox` keeps (`--out` into its folder), `--from-sandbox` prints again: the
    text as it was printed, and where the files are."""
    ledger(LEDGER)
    code, out, _ = report("--out", str(tmp_path))
    assert code == 0
    assert out.startswith((tmp_path / "report.txt").read_text())
    assert (tmp_path / "report.txt").read_text() == EXPECTED_ALL.format(project=ledger.project)
    done = command({}, "--from-sandbox", str(tmp_path))
    assert (done.returncode, done.stderr) == (0, "")
    text, where = done.stdout.rsplit("\n\n", 1)
    assert text + "\n" == EXPECTED_ALL.format(project=ledger.project)
    files = "outcomes.csv, recovered.csv, recovered_by_day.csv, recovered_by_decline_code.csv, "
    assert where == f"In {tmp_path}: {files}recovery.png, report.txt, summary.csv\n"


@pytest.mark.integration
def test_no_kept_report_says_to_run_the_sandbox_with_exit_2(tmp_path):
    done = command({}, "--from-sandbox", str(tmp_path / "none"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"report: no report in {tmp_path / 'none'}: run ./dev sandbox first\n"


@pytest.mark.integration
def test_from_sandbox_reads_a_folder_of_the_checkout_git_ignores():
    assert SANDBOX_REPORT.parent.parent == ROOT
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", str(SANDBOX_REPORT / "report.txt")],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0


@pytest.mark.integration
def test_from_sandbox_prints_a_kept_report_only(tmp_path):
    done = command({}, "--from-sandbox", str(tmp_path), "--since", "30d")
    assert done.returncode == 2
    assert "--from-sandbox prints a report already made: no --since, no --out" in done.stderr


def test_an_empty_ledger_reports_zeros_and_still_draws(ledger, report, tmp_path):
    code, out, _ = report("--out", str(tmp_path))
    assert code == 0
    assert "Failed payments           0 entries, 0 invoices" in out
    assert "Text to payment           no texted invoice paid yet" in out
    assert (tmp_path / "recovery.png").read_bytes()[:8] == PNG_SIGNATURE


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_counts_the_ledger_on_a_terminal(ledger):
    ledger(LEDGER)
    reader, _ = open_ledger(ledger.project, DATABASE)
    assert reader.count() == 27  # 19 entries and 8 payments
    err, tally = Terminal(), Tally()
    read(reader, tally, err)
    assert "reading the ledger" in ANSI.sub("", err.getvalue())
    assert "27/27" in ANSI.sub("", err.getvalue())
    assert tally.entries == 19


def test_no_bar_when_stderr_is_not_a_terminal(ledger, report):
    ledger(LEDGER)
    assert report()[2] == ""


# --- exit codes ------------------------------------------------------------------------------


def command(env, *argv):
    """`python -m tools.report` as ./dev runs it, with only `env` besides PATH."""
    return subprocess.run(
        [sys.executable, "-m", "tools.report", *argv],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_a_missing_project_is_a_clear_error_with_exit_2():
    done = command({})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("report: GOOGLE_CLOUD_PROJECT is required")


@pytest.mark.integration
def test_a_malformed_since_is_an_argument_error_with_exit_2():
    done = command({"GOOGLE_CLOUD_PROJECT": "p"}, "--since", "30")
    assert done.returncode == 2
    assert "give hours or days, such as 48h or 7d, not '30'" in done.stderr


@pytest.mark.integration
def test_an_unreachable_ledger_stops_with_exit_1():
    done = command(
        {"GOOGLE_CLOUD_PROJECT": "p", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"},
    )
    assert done.returncode == 1
    assert done.stderr == "report stopped: Firestore unreachable: ConnectionError\n"


# --- the group of an invoice, as the report reads it -----------------------------------------


def test_a_text_that_went_out_counts_as_texted_whatever_the_entry_ended_as():
    """The recover function records `texted_at` as the text goes out; the entry may still end
    `failed` (the link refused after the text) or never finish (a crash after the text). The
    customer was texted: the report counts the text, and the invoice in its assigned group."""
    texted, paid_at = ago(1), ago(1, -30)
    payment = Payment("in_1", paid_at, 2500, "usd")
    tally = Tally()
    tally.add_invoice(
        [entry("in_1", 1, ago(1), "failed", "treated", state="failed", texted_at=texted)],
        payment,
    )
    tally.add_invoice([entry("in_2", 1, ago(1), group="treated", texted_at=texted)])
    assert tally.groups == {"treated": 2}
    assert tally.paid == {"treated": 1}
    assert (tally.texts, tally.treated_texted, tally.treated_texted_paid) == (2, 2, 1)
    # Each counted once: among the texted, none among the entries not texted.
    assert tally.outcomes == {"failed": 1, NO_OUTCOME: 1}
    assert tally.untexted == {}
    assert list(tally.minutes) == [30.0]


def test_a_ledger_written_before_the_groups_were_recorded_reads_by_what_its_entries_show():
    """Entries of the previous version carry no `group`, and their payment sits on an entry:
    a text, a deferral, a recorded plan or an unreachable number came after the draw (treated),
    a holdout is a holdout, anything else never reached it; the payment counts once."""
    payment = Payment("in_1", ago(1), 2500, "usd")
    tally = Tally()
    tally.add_invoice(
        [
            entry("in_1", 1, ago(3), "skipped:unreachable"),
            entry("in_1", 2, ago(2), "sent", texted_at=ago(2), paid=payment),
        ]
    )
    tally.add_invoice([entry("in_2", 1, ago(2), "skipped:holdout", paid=payment)])
    tally.add_invoice([entry("in_3", 1, ago(2), "skipped:not_open", due_at=ago(2))])
    # The report reads a plan's line alone (below): the rest reads empty.
    line_only = Plan("", "", "", "+1202")
    tally.add_invoice([entry("in_4", 1, ago(2), "failed", state="failed", plan=line_only)])
    tally.add_invoice([entry("in_5", 1, ago(2), "skipped:no_phone", paid=payment)])
    assert tally.groups == {"treated": 3, "holdout": 1, "not_assigned": 1}
    assert tally.paid == {"treated": 1, "holdout": 1, "not_assigned": 1}
    assert tally.recovered[("treated", "usd")].amount == 2500


def test_the_report_reads_of_a_plan_its_line_only(ledger):
    """Of an entry of the previous version, a recorded plan says it passed the draw; the report
    reads the plan's line for that, and never the customer's number."""
    ledger([entry("in_L1", 1, ago(1), "skipped:not_open", plan=PLAN)])
    reader, _ = open_ledger(ledger.project, DATABASE)
    [[read_back]] = list(reader.pages(PAGE_SIZE))
    assert (read_back.key, read_back.plan) == (EntryKey("in_L1", 1), Plan("", "", "", PLAN.line))
    tally = Tally()
    read(reader, tally, io.StringIO())
    assert tally.groups == {"treated": 1}


# --- the chart ---------------------------------------------------------------------------------


def test_the_chart_leads_with_the_rates_and_the_lift_and_compares_per_invoice():
    """Issue 20: the chart drew each group's recovered amount per day, where the holdout's bars
    are small because the group is (a tenth of the invoices). It leads with what the report is
    about, each arm's rate with its 95 % interval and the lift; then the amount recovered per
    assigned invoice, cumulative; then the funnel."""
    from tools.report_files import figure

    tally = Tally()
    for n in range(40):
        group = "holdout" if n < 10 else "treated"
        action = "skipped:holdout" if n < 10 else "sent"
        texted_at = ago(3) if action == "sent" else None
        recorded = entry(f"in_{n}", 1, ago(3), action, group, texted_at=texted_at)
        # Day 1: three paid in each arm; day 2: nine more treated ones.
        payment = None
        if n in (0, 1, 2, 10, 11, 12) or 20 <= n < 29:
            at = ago(2) if n < 20 else ago(1)
            payment = Payment(f"in_{n}", at, 3000, "usd")
        tally.add_invoice([recorded], payment)
    drawn = figure(tally)
    rates, lift, usd, funnel = drawn.axes
    assert [axes.get_title(loc="left") for axes in drawn.axes] == [
        "Recovery rate as assigned, 95 % interval",
        "Lift (treated - holdout)",
        "Recovered per assigned invoice, cumulative (USD, UTC days)",
        "Funnel (invoices)",
    ]
    # 12 of 30 treated, 3 of 10 held out: the points at 40 % and 30 %, each across its interval.
    drawn_rates = []
    for bar in rates.containers:
        point, _, (ranges,) = bar.lines
        [[(low, _), (high, _)]] = ranges.get_segments()
        drawn_rates.append(tuple(round(x, 4) for x in (low, point.get_xdata()[0], high)))
    wilson = [rate_interval(12, 30), rate_interval(3, 10)]
    assert drawn_rates == [
        (round(wilson[0][0] * 100, 4), 40.0, round(wilson[0][1] * 100, 4)),
        (round(wilson[1][0] * 100, 4), 30.0, round(wilson[1][1] * 100, 4)),
    ]
    assert "not enough data" in lift.texts[0].get_text()
    # Per invoice of its arm: $90 over 30 treated invoices, then $360; $90 over 10 held out.
    lines = {line.get_label().split(" ")[0]: list(line.get_ydata()) for line in usd.lines}
    assert lines == {"treated": [3.0, 12.0, 12.0], "holdout": [9.0, 9.0, 9.0]}
    assert [bar.get_width() for bar in funnel.patches] == [12, 30, 30, 40, 40]
