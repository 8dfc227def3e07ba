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
from tools.lift import MIN_GROUP_INVOICES, newcombe, too_small
from tools.report import LedgerReader, main, read
from tools.tally import Tally

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


def entry(invoice, attempt, created, action=None, **fields):
    """A ledger entry as the product writes it, with the plan (a phone number) it records."""
    values = {
        "invoice_id": invoice,
        "attempt": attempt,
        "customer_id": f"cus_{invoice}",
        "livemode": False,
        "created_at": created,
        "state": "done" if action else "active",
        "plan": {"to": PHONE, "text": "Hi Jane", "link": "https://pay.example/x", "line": "+1"},
        **fields,
    }
    if action:
        values["action"] = action
    return f"{invoice}-{attempt}", values


def sent(invoice, attempt, created, texted_at=None, **fields):
    return entry(invoice, attempt, created, "sent", texted_at=texted_at or created, **fields)


def paid(at, amount, currency, group):
    return {
        "paid_at": at,
        "paid_amount": amount,
        "paid_currency": currency,
        "paid_group": group,
        "paid_event": "evt_paid",
    }


# 13 invoices, 17 entries. in_T1 and in_T10 test that an invoice's entries stay together.
LEDGER = [
    sent("in_T1", 1, ago(2), **paid(ago(2, -90), 2500, "usd", "texted")),
    # Deferred for the night, then texted; the invoice failed again and was paid 30 minutes
    # after its second text.
    sent("in_T10", 1, ago(3), texted_at=ago(3, -480), due_at=ago(3, -480)),
    sent("in_T10", 2, ago(1), **paid(ago(1, -30), 1000, "eur", "texted")),
    sent("in_T2", 1, ago(5)),
    entry("in_T3", 1, ago(6), "skipped:no_phone"),
    sent("in_T3", 2, ago(3)),
    entry("in_H1", 1, ago(4), "skipped:holdout", **paid(ago(3), 5000, "usd", "holdout")),
    entry("in_H2", 1, ago(4), "skipped:holdout"),
    entry("in_H2", 2, ago(1), "skipped:holdout"),
    entry("in_N1", 1, ago(2), "skipped:no_phone", **paid(ago(1), 3000, "jpy", "not_texted")),
    entry("in_N2", 1, ago(2), "skipped:opted_out"),
    entry("in_N3", 1, ago(2), "failed", state="failed"),
    entry("in_N4", 1, ago(minutes=60)),
    entry("in_N5", 1, ago(minutes=120), "deferred:quiet_hours", due_at=ago(minutes=-300)),
    # Outside --since 30d.
    sent("in_OLD", 1, ago(40), **paid(ago(40, -600), 1500, "gbp", "texted")),
    # Texted 35 days ago and paid 2 days ago, 47,520 minutes later; its second attempt, inside
    # --since 30d, brings the whole invoice in.
    sent("in_X", 1, ago(35), **paid(ago(2), 700, "usd", "texted")),
    entry("in_X", 2, ago(3), "skipped:policy"),
]

EXPECTED_ALL = """\
Recovery report: projects/{project}/databases/dunning, dunning_sends, all entries

Failed payments           17 entries, 13 invoices
Texted                    7 entries, 6 invoices
Skipped                   7 entries
  skipped:holdout         3
  skipped:no_phone        2
  skipped:opted_out       1
  skipped:policy          1
Other outcomes            (no outcome yet) 1, deferred:quiet_hours 1, failed 1
Deferred (quiet hours)    2 entries

Recovered (by group)      paid of invoices, rate: amount
  texted                  4 of 6, 66.7 %: €10.00, £15.00, $32.00
  holdout                 1 of 2, 50.0 %: $50.00
  not_texted              1 of 5, 20.0 %: ¥3,000

Lift (texted - holdout)   not enough data: texted has 6 invoices and holdout has 2 invoices; \
each group needs at least 30
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
        return write_ledger(firestore.url, project, DATABASE, entries)

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
    assert ledger(LEDGER) == 17
    code, out, err = report()
    assert (code, err) == (0, "")
    assert out == EXPECTED_ALL.format(project=ledger.project)
    assert PHONE not in out


def test_an_invoice_split_across_pages_is_still_one_invoice(ledger, report, monkeypatch):
    ledger(LEDGER)
    # Two entries a query: in_H2, in_T3 and in_X each straddle two pages.
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
    # in_OLD is gone; of in_X only the second attempt is counted, but its payment, recorded on
    # the first, is: 3 of the 5 texted invoices, $25 + $7 and €10.
    assert lines[2:6] == [
        "Failed payments           15 entries, 12 invoices",
        "Texted                    5 entries, 5 invoices",
        "Skipped                   7 entries",
        "  skipped:holdout         3",
    ]
    assert "  texted                  3 of 5, 60.0 %: €10.00, $32.00" in lines
    # 30, 90 and 47,520 minutes.
    assert lines[-1] == "Text to payment           median 90 min, p90 38,034 min (3 payments)"


def test_report_of_groups_big_enough_gives_the_lift_and_its_interval(ledger, report):
    # 40 texted invoices, 20 paid (50 %); 30 held out, 6 paid (20 %).
    entries = [
        sent(f"in_t{n:03d}", 1, ago(1), **(paid(ago(0.5), 100, "usd", "texted") if n < 20 else {}))
        for n in range(40)
    ] + [
        entry(
            f"in_h{n:03d}",
            1,
            ago(1),
            "skipped:holdout",
            **(paid(ago(0.5), 100, "usd", "holdout") if n < 6 else {}),
        )
        for n in range(30)
    ]
    ledger(entries)
    code, out, _ = report()
    assert code == 0
    assert (
        "Lift (texted - holdout)   +30.0 points, 95 % CI +7.2 to +48.1 (Newcombe hybrid score)"
        in out.splitlines()
    )


def test_out_writes_the_figures_as_csv_and_a_png_chart(ledger, report, tmp_path):
    ledger(LEDGER)
    out_dir = tmp_path / "figures"
    code, out, _ = report("--out", str(out_dir))
    assert code == 0
    assert sorted(path.name for path in out_dir.iterdir()) == [
        "outcomes.csv",
        "recovered.csv",
        "recovered_by_day.csv",
        "recovery.png",
        "summary.csv",
    ]

    def rows(name):
        with (out_dir / name).open(newline="") as handle:
            return list(csv.reader(handle))

    assert dict(rows("summary.csv")[1:]) == {
        "entries": "17",
        "invoices": "13",
        "texts_sent": "7",
        "entries_deferred": "2",
        "texted_invoices": "6",
        "texted_paid": "4",
        "texted_rate": "0.6667",
        "holdout_invoices": "2",
        "holdout_paid": "1",
        "holdout_rate": "0.5000",
        "not_texted_invoices": "5",
        "not_texted_paid": "1",
        "not_texted_rate": "0.2000",
        "lift": "",
        "lift_low_95": "",
        "lift_high_95": "",
        "lift_note": "texted has 6 invoices and holdout has 2 invoices; each group needs at "
        "least 30",
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
        ["skipped:opted_out", "1"],
        ["skipped:policy", "1"],
    ]
    assert rows("recovered.csv") == [
        ["group", "currency", "invoices", "amount_minor", "amount"],
        ["holdout", "usd", "1", "5000", "50.00"],
        ["not_texted", "jpy", "1", "3000", "3000"],
        ["texted", "eur", "1", "1000", "10.00"],
        ["texted", "gbp", "1", "1500", "15.00"],
        ["texted", "usd", "2", "3200", "32.00"],
    ]
    assert sorted(rows("recovered_by_day.csv")[1:]) == sorted(
        [
            # in_T1 ($25 at 13:30) and in_X ($7 at noon) two days ago.
            [day(ago(2)), "texted", "usd", "2", "3200", "32.00"],
            [day(ago(1)), "texted", "eur", "1", "1000", "10.00"],
            [day(ago(3)), "holdout", "usd", "1", "5000", "50.00"],
            [day(ago(1)), "not_texted", "jpy", "1", "3000", "3000"],
            [day(ago(40)), "texted", "gbp", "1", "1500", "15.00"],
        ]
    )
    assert (out_dir / "recovery.png").read_bytes()[:8] == PNG_SIGNATURE
    assert out.splitlines()[-1].startswith(f"Written: {out_dir / 'summary.csv'}, ")
    for path in out_dir.iterdir():
        assert PHONE.encode() not in path.read_bytes()


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
    reader = LedgerReader(ledger.project, DATABASE)
    assert reader.count() == 17
    err, tally = Terminal(), Tally()
    read(reader, tally, err)
    assert "reading the ledger" in ANSI.sub("", err.getvalue())
    assert "17/17" in ANSI.sub("", err.getvalue())
    assert tally.entries == 17


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


def test_a_missing_project_is_a_clear_error_with_exit_2():
    done = command({})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("report: GOOGLE_CLOUD_PROJECT is required")


def test_a_malformed_since_is_an_argument_error_with_exit_2():
    done = command({"GOOGLE_CLOUD_PROJECT": "p"}, "--since", "30")
    assert done.returncode == 2
    assert "give hours or days, such as 48h or 7d, not '30'" in done.stderr


def test_an_unreachable_ledger_stops_with_exit_1():
    done = command(
        {"GOOGLE_CLOUD_PROJECT": "p", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"},
    )
    assert done.returncode == 1
    assert done.stderr == "report stopped: Firestore unreachable: ConnectionError\n"


# --- the group of an invoice, as the report reads it -----------------------------------------


def test_a_text_that_went_out_counts_in_the_texted_group_whatever_the_entry_ended_as():
    """The recover function records `texted_at` as the text goes out; the entry may still end
    `failed` (the link refused after the text) or never finish (a crash after the text). The
    customer was texted: the payment's `recovered` line says `texted` (shared/core/attribution),
    and the report must count the invoice in the same group, not in `not_texted`."""
    from tools.tally import Entry

    texted, paid_at = ago(1), ago(1, -30)

    def one(invoice, action, **payment):
        fields = {"due_at": None, "paid_at": None, "paid_amount": None, "paid_currency": None}
        return Entry(invoice, ago(1), action, texted_at=texted, **{**fields, **payment})

    tally = Tally()
    payment = {"paid_at": paid_at, "paid_amount": 2500, "paid_currency": "usd"}
    tally.add_invoice([one("in_LINK", "failed", **payment)])
    tally.add_invoice([one("in_CRASH", None)])
    assert tally.groups == {"texted": 2}
    assert tally.paid == {"texted": 1}
    assert tally.texts == 2
    assert list(tally.minutes) == [30.0]
