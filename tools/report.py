"""`./dev report`: what the texts recovered, read from the send ledger.

Every failed payment is one ledger entry (`{invoice_id}-{attempt}`), carrying the group it was
assigned at the holdout draw, and an invoice's payment is one document beside them
(`{invoice_id}-paid`). The report reads the ledger by name, page by page, so an invoice's entries
and its payment arrive together (invoice ids have no `-`, which sorts before every letter and
digit; `paid` sorts after every attempt's number), and folds each invoice into running totals as
it goes: it never holds more than one page and one invoice's documents.

`--since 30d` keeps the entries created in the last 30 days; an invoice counts when any of its
entries does, and its group is read from all its entries, because it was assigned at the first
attempt that reached the draw, which may be older. Exit status: 0 done; 1 the ledger could not be
read (running it again is safe: it only reads); 2 a wrong argument or variable.

`./dev sandbox` keeps its report (the text, the CSV files and the chart) in `.sandbox/report/` of
the checkout; `--from-sandbox` prints it again, without a ledger or credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import google.auth.exceptions
import rich.console
import rich.progress

from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import COLLECTION, Ledger
from shared.core.attribution import GROUPS, HOLDOUT, TREATED
from shared.core.entry import Entry, Payment
from shared.core.errors import ConfigError, RetryableError
from shared.core.money import format_amount
from shared.workflow.settings import ReportSettings
from tools.lift import Lift
from tools.since import parse_age
from tools.tally import Tally

# Entries per query: a 100,000-entry ledger is 20 requests, and a page (about 500 bytes an entry
# as JSON, a few KB once parsed) stays far below the 200 MiB the report is held to.
PAGE_SIZE = 5000
# A page takes the emulator seconds to answer.
TIMEOUT = (3.05, 30.0)
# Where `./dev sandbox` keeps its report (ignored by git), and the report's text among the files.
SANDBOX_REPORT = Path(__file__).resolve().parent.parent / ".sandbox" / "report"
TEXT = "report.txt"


def open_ledger(project: str, database: str) -> tuple[Ledger, str]:
    """The ledger to read, and where it is (`projects/P/databases/D`)."""
    try:
        documents = FirestoreDocuments(project, database, timeout=TIMEOUT)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ConfigError(
            "no Google credentials to read the ledger with: run "
            "`gcloud auth application-default login` (an account that may read Firestore "
            f"in {project})"
        ) from exc
    return Ledger(documents), documents.database


def _invoice_of(record: Entry | Payment) -> str:
    return record.invoice_id if isinstance(record, Payment) else record.key.invoice_id


def read(ledger: Ledger, tally: Tally, err: TextIO) -> None:
    """Fold every invoice of the ledger into `tally`, with a progress bar on a terminal."""
    with rich.progress.Progress(
        rich.progress.TextColumn("reading the ledger ["),
        rich.progress.BarColumn(),
        rich.progress.TextColumn("]"),
        rich.progress.MofNCompleteColumn(),
        console=rich.console.Console(file=err),
        transient=True,
        disable=not err.isatty(),
    ) as progress:
        task = progress.add_task("ledger", total=ledger.count() if err.isatty() else None)

        def records() -> Iterator[Entry | Payment]:
            for page in ledger.pages(PAGE_SIZE):
                yield from page
                progress.advance(task, len(page))

        for _, invoice in itertools.groupby(records(), key=_invoice_of):
            entries: list[Entry] = []
            payment = None
            for record in invoice:
                if isinstance(record, Payment):
                    payment = record
                else:
                    entries.append(record)
            tally.add_invoice(entries, payment)


# --- the printed report ---------------------------------------------------------------------


def _amounts(tally: Tally, group: str) -> str:
    found = sorted((c, r.amount) for (g, c), r in tally.recovered.items() if g == group)
    return ", ".join(format_amount(amount, currency) for currency, amount in found) or "-"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _n(count: int, noun: str) -> str:
    """`1 entry`, `2,129 entries`, `1 invoice`, `6 invoices`."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count:,} {noun if count == 1 else plural}"


def _line(label: str, value: str) -> str:
    # A label longer than the column (a long decline code) still leaves a space before its value.
    return f"{label:<25} {value}".rstrip()


def render(tally: Tally, where: str) -> list[str]:
    """The report as lines of text."""
    window = "all entries"
    if tally.since is not None:
        window = f"entries created since {tally.since:%Y-%m-%d %H:%M} UTC"
    # The entries not texted by outcome, the skips first: with the texted, every entry.
    untexted = sorted(
        tally.untexted.items(),
        key=lambda item: (not item[0].startswith("skipped:"), item[0]),
    )
    lines = [
        f"Recovery report: {where}, {COLLECTION}, {window}",
        "",
        _line("Failed payments", f"{_n(tally.entries, 'entry')}, {_n(tally.invoices, 'invoice')}"),
        _line("  Texted", f"{_n(tally.texts, 'entry')}, {_n(tally.texted_invoices, 'invoice')}"),
        _line("  Not texted", _n(tally.entries - tally.texts, "entry")),
        *(_line(f"    {action}", f"{count:,}") for action, count in untexted),
        _line(
            "Deferred for quiet hours",
            f"{tally.deferred:,} of these {_n(tally.entries, 'entry')}: "
            f"{tally.deferred_texted:,} texted, {tally.deferred - tally.deferred_texted:,} not",
        ),
        "",
        _line("Recovered, as assigned", "paid of invoices, rate: amount"),
    ]
    for group in GROUPS:
        lines.append(
            _line(
                f"  {group}",
                f"{_of(tally.paid[group], tally.groups[group])}: {_amounts(tally, group)}",
            )
        )
    lines += ["", _line("By first decline code", "paid of invoices, rate, as assigned")]
    lines += [_line(f"  {code}", _by_group(tally, code)) for code in tally.decline_codes()]
    lift = tally.lift()
    lines += ["", _line(LIFT, _lift(lift))]
    lines += _per_protocol(tally, lift)
    timing = tally.minutes_to_pay()
    lines.append(
        _line(
            "Text to payment",
            "no texted invoice paid yet"
            if timing is None
            else f"median {timing[0]:,.0f} min, p90 {timing[1]:,.0f} min "
            f"({len(tally.minutes):,} payments)",
        )
    )
    return lines


LIFT = f"Lift ({TREATED} - {HOLDOUT})"


def _of(paid: int, invoices: int) -> str:
    """`2 of 8, 25.0 %`; `0 of 0, -`."""
    share = f"{paid / invoices * 100:.1f} %" if invoices else "-"
    return f"{paid:,} of {invoices:,}, {share}"


def _by_group(tally: Tally, code: str) -> str:
    """`treated 2 of 3, 66.7 %; holdout 0 of 1, 0.0 %`: the groups the code's invoices are in."""
    return "; ".join(
        f"{group} {_of(tally.declines_paid[code, group], tally.declines[code, group])}"
        for group in GROUPS
        if tally.declines[code, group]
    )


def _lift(lift: Lift | str) -> str:
    if isinstance(lift, str):
        return f"not enough data: {lift}"
    return (
        f"{_points(lift.difference)} points, 95 % CI {_points(lift.low)} to "
        f"{_points(lift.high)} (Newcombe hybrid score)"
    )


def _per_protocol(tally: Tally, lift: Lift | str) -> list[str]:
    """The treated invoices that were texted, labelled for what it is: the customers the texts
    could reach, who differ from the holdout's (see docs/measuring.md)."""
    if not tally.treated_texted:
        return [_line("Per protocol (texted)", "no treated invoice was texted")]
    lines = [
        _line(
            "Per protocol (texted)",
            f"{_of(tally.treated_texted_paid, tally.treated_texted)} "
            f"({tally.treated_texted:,} of {tally.groups[TREATED]:,} treated invoices were "
            "texted)",
        )
    ]
    rate, holdout = tally.per_protocol_rate(), tally.rate(HOLDOUT)
    # Shown beside a lift only: with groups too small for one, it says nothing either.
    if not isinstance(lift, str) and rate is not None and holdout is not None:
        lines.append(
            _line(
                f"  texted - {HOLDOUT}",
                f"{_points(rate - holdout)} points: biased, not the lift",
            )
        )
    return lines


# --- the command ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev report",
        description="What the texts recovered: failed payments, outcomes, payments by the group "
        "assigned at the holdout draw, and the lift of the treated group over the holdout, from "
        "the send ledger. Reads "
        "GOOGLE_CLOUD_PROJECT and FIRESTORE_DATABASE (and FIRESTORE_EMULATOR_HOST locally).",
    )
    parser.add_argument(
        "--since", type=parse_age, help="entries created in the last N days or hours: 30d, 48h"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"also write the report as {TEXT}, the figures as CSV and a PNG chart",
    )
    parser.add_argument(
        "--from-sandbox",
        type=Path,
        nargs="?",
        const=SANDBOX_REPORT,
        metavar="DIR",
        help="print the last `./dev sandbox` report again, from its files (default: "
        f"{SANDBOX_REPORT.relative_to(SANDBOX_REPORT.parents[1])}); no ledger is read",
    )
    return parser


def kept(directory: Path) -> str:
    """The report kept in `directory` by `--out`, and where its files are."""
    try:
        text = (directory / TEXT).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"no report in {directory}: run ./dev sandbox first") from exc
    files = ", ".join(sorted(path.name for path in directory.iterdir()))
    return f"{text}\nIn {directory}: {files}\n"


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.from_sandbox is not None:
        if args.since is not None or args.out is not None:
            parser.error("--from-sandbox prints a report already made: no --since, no --out")
        out.write(kept(args.from_sandbox))
        return 0
    settings = ReportSettings.from_env()
    now = dt.datetime.now(dt.UTC)
    tally = Tally(since=None if args.since is None else now - dt.timedelta(seconds=args.since))
    ledger, where = open_ledger(settings.project, settings.firestore_database)
    read(ledger, tally, err)
    text = "\n".join(render(tally, where)) + "\n"
    out.write(text)
    if args.out is not None:
        # Only with --out: matplotlib takes a second to import and tens of MB.
        from tools import report_files

        written = report_files.write(tally, args.out)
        (args.out / TEXT).write_text(text, encoding="utf-8")
        written.append(args.out / TEXT)
        out.write(f"\nWritten: {', '.join(str(path) for path in written)}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv, sys.stdout, sys.stderr)
    except ConfigError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    except RetryableError as exc:
        print(f"report stopped: {exc.reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
