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
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO

import google.auth.exceptions
import requests
import rich.console
import rich.progress

from shared.adapters.google import rest_session
from shared.adapters.ledger import _SCOPE, COLLECTION, PAID, _decode
from shared.core.attribution import GROUPS, HOLDOUT, TREATED
from shared.core.errors import ConfigError, RetryableError
from shared.core.money import format_amount
from shared.core.outcome import Action
from shared.workflow.settings import ReportSettings
from tools.lift import Lift
from tools.since import parse_age
from tools.tally import FIELDS, Tally

# Entries per query: a 100,000-entry ledger is 20 requests, and a page (about 500 bytes an entry
# as JSON, a few KB once parsed) stays far below the 200 MiB the report is held to.
PAGE_SIZE = 5000
TIMEOUT = (3.05, 30.0)


# A ledger document as the report reads it: its invoice, the last part of its key (an attempt's
# number, or PAID), and its fields.
Document = tuple[str, str, dict[str, Any]]


def document(found: dict[str, Any]) -> Document:
    """A ledger document, its fields decoded as the ledger itself decodes them."""
    fields = {k: _decode(v) for k, v in (found.get("fields") or {}).items()}
    invoice, _, part = found["name"].rsplit("/", 1)[1].rpartition("-")
    return invoice, part, fields


class LedgerReader:
    """The ledger's entries by name, page by page, over Firestore's REST API."""

    def __init__(self, project: str, database: str) -> None:
        try:
            self._session, base = rest_session(
                _SCOPE, "FIRESTORE_EMULATOR_HOST", "https://firestore.googleapis.com"
            )
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(
                "no Google credentials to read the ledger with: run "
                "`gcloud auth application-default login` (an account that may read Firestore "
                f"in {project})"
            ) from exc
        self.where = f"projects/{project}/databases/{database}"
        self._documents = f"{base}/v1/{self.where}/documents"

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            answer = self._session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise RetryableError(f"Firestore unreachable: {type(exc).__name__}") from exc
        if not answer.ok:
            raise RetryableError(f"Firestore {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    def count(self) -> int:
        """How many documents the ledger holds (an aggregation: one read per 1,000)."""
        query = {
            "structuredAggregationQuery": {
                "structuredQuery": {"from": [{"collectionId": COLLECTION}]},
                "aggregations": [{"alias": "entries", "count": {}}],
            }
        }
        rows = self._call("POST", f"{self._documents}:runAggregationQuery", json=query)
        found = [row["result"] for row in rows if "result" in row]
        return int(found[0]["aggregateFields"]["entries"]["integerValue"]) if found else 0

    def pages(self) -> Iterator[list[Document]]:
        """The documents in pages of PAGE_SIZE, by name, each page after the last one's name.

        A query ordered by `__name__` with a cursor, rather than listing the collection with a
        page token: the emulator returns at most 150 documents a listed page and spends seconds
        on each request however small, which made a 100,000-entry ledger a half-hour read.
        """
        query: dict[str, Any] = {
            "from": [{"collectionId": COLLECTION}],
            # Only what the report needs: the plan (recipient, text) and the lease never travel.
            "select": {"fields": [{"fieldPath": name} for name in FIELDS]},
            "orderBy": [{"field": {"fieldPath": "__name__"}, "direction": "ASCENDING"}],
            "limit": PAGE_SIZE,
        }
        while True:
            rows = self._call(
                "POST", f"{self._documents}:runQuery", json={"structuredQuery": query}
            )
            documents = [row["document"] for row in rows if "document" in row]
            yield [document(found) for found in documents]
            if len(documents) < PAGE_SIZE:
                return
            last = {"referenceValue": documents[-1]["name"]}
            query["startAt"] = {"values": [last], "before": False}


def read(reader: LedgerReader, tally: Tally, err: TextIO) -> None:
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
        task = progress.add_task("ledger", total=reader.count() if err.isatty() else None)

        def documents() -> Iterator[Document]:
            for page in reader.pages():
                yield from page
                progress.advance(task, len(page))

        for _, invoice in itertools.groupby(documents(), key=itemgetter(0)):
            entries, payment = [], None
            for _, part, fields in invoice:
                if part == PAID:
                    payment = fields
                else:
                    entries.append(fields)
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
    return f"{label:<26}{value}".rstrip()


def render(tally: Tally, where: str) -> list[str]:
    """The report as lines of text."""
    window = "all entries"
    if tally.since is not None:
        window = f"entries created since {tally.since:%Y-%m-%d %H:%M} UTC"
    skipped = sorted((a, n) for a, n in tally.outcomes.items() if a.startswith("skipped:"))
    others = sorted(
        (a, n)
        for a, n in tally.outcomes.items()
        if a != Action.SENT and not a.startswith("skipped:")
    )
    lines = [
        f"Recovery report: {where}, {COLLECTION}, {window}",
        "",
        _line("Failed payments", f"{_n(tally.entries, 'entry')}, {_n(tally.invoices, 'invoice')}"),
        _line("Texted", f"{_n(tally.texts, 'entry')}, {_n(tally.texted_invoices, 'invoice')}"),
        _line("Skipped", _n(sum(n for _, n in skipped), "entry")),
        *(_line(f"  {action}", f"{count:,}") for action, count in skipped),
        *([_line("Other outcomes", ", ".join(f"{a} {n:,}" for a, n in others))] if others else []),
        _line("Deferred (quiet hours)", _n(tally.deferred, "entry")),
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


def _lift(lift: Lift | str) -> str:
    if isinstance(lift, str):
        return f"not enough data: {lift}"
    return (
        f"{_points(lift.difference)} points, 95 % CI {_points(lift.low)} to "
        f"{_points(lift.high)} (Newcombe hybrid score)"
    )


def _per_protocol(tally: Tally, lift: Lift | str) -> list[str]:
    """The treated invoices that were texted, labelled for what it is: the customers the texts
    could reach, who differ from the holdout's (see README, Measuring recovery)."""
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
        "--out", type=Path, metavar="DIR", help="also write the figures as CSV and a PNG chart"
    )
    return parser


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    args = _parser().parse_args(argv)
    settings = ReportSettings.from_env()
    now = dt.datetime.now(dt.UTC)
    tally = Tally(since=None if args.since is None else now - dt.timedelta(seconds=args.since))
    reader = LedgerReader(settings.project, settings.firestore_database)
    read(reader, tally, err)
    out.write("\n".join(render(tally, reader.where)) + "\n")
    if args.out is not None:
        # Only with --out: matplotlib takes a second to import and tens of MB.
        from tools import report_files

        written = report_files.write(tally, args.out)
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
