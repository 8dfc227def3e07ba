"""`./dev report`: what the texts recovered, read from the send ledger.

Every failed payment is one ledger entry (`{invoice_id}-{attempt}`), and the product records on
the invoice's deciding entry when the invoice was paid, how much, and in which group it was. The
report reads the entries by name, page by page, so the entries of one invoice arrive together
(invoice ids have no `-`, which sorts before every letter and digit), and folds each invoice into
running totals as it goes: it never holds more than one page and one invoice's entries.

`--since 30d` keeps the entries created in the last 30 days; an invoice counts when any of its
entries does, and its group and payment are read from all its entries, because the payment is
recorded on the deciding entry, which may be an older attempt. Exit status: 0 done; 1 the ledger
could not be read (running it again is safe: it only reads); 2 a wrong argument or variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
from collections.abc import Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, TextIO

import google.auth.exceptions
import requests
import rich.console
import rich.progress

from shared.adapters.google import rest_session
from shared.adapters.ledger import _SCOPE, COLLECTION, _decode
from shared.core.errors import ConfigError, RetryableError
from shared.core.money import format_amount
from shared.core.outcome import Action
from shared.workflow.settings import ReportSettings
from tools.since import parse_age
from tools.tally import FIELDS, GROUPS, TEXTED, Entry, Tally

# Entries per query: a 100,000-entry ledger is 20 requests, and a page (about 500 bytes an entry
# as JSON, a few KB once parsed) stays far below the 200 MiB the report is held to.
PAGE_SIZE = 5000
TIMEOUT = (3.05, 30.0)


def entry(document: dict[str, Any]) -> Entry:
    """A ledger document as the report reads it, decoded as the ledger itself decodes it."""
    fields = {k: _decode(v) for k, v in (document.get("fields") or {}).items()}
    key = document["name"].rsplit("/", 1)[1]
    return Entry(key.rsplit("-", 1)[0], **{name: fields.get(name) for name in FIELDS})


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
        """How many entries the ledger holds (an aggregation: one read per 1,000 entries)."""
        query = {
            "structuredAggregationQuery": {
                "structuredQuery": {"from": [{"collectionId": COLLECTION}]},
                "aggregations": [{"alias": "entries", "count": {}}],
            }
        }
        rows = self._call("POST", f"{self._documents}:runAggregationQuery", json=query)
        found = [row["result"] for row in rows if "result" in row]
        return int(found[0]["aggregateFields"]["entries"]["integerValue"]) if found else 0

    def pages(self) -> Iterator[list[Entry]]:
        """The entries in pages of PAGE_SIZE, by name, each page after the last one's name.

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
            yield [entry(document) for document in documents]
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

        def entries() -> Iterator[Entry]:
            for page in reader.pages():
                yield from page
                progress.advance(task, len(page))

        for _, invoice in itertools.groupby(entries(), key=attrgetter("invoice_id")):
            tally.add_invoice(list(invoice))


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
        _line("Texted", f"{_n(tally.texts, 'entry')}, {_n(tally.groups[TEXTED], 'invoice')}"),
        _line("Skipped", _n(sum(n for _, n in skipped), "entry")),
        *(_line(f"  {action}", f"{count:,}") for action, count in skipped),
        *([_line("Other outcomes", ", ".join(f"{a} {n:,}" for a, n in others))] if others else []),
        _line("Deferred (quiet hours)", _n(tally.deferred, "entry")),
        "",
        _line("Recovered (by group)", "paid of invoices, rate: amount"),
    ]
    for group in GROUPS:
        rate = tally.rate(group)
        share = "-" if rate is None else f"{rate * 100:.1f} %"
        lines.append(
            _line(
                f"  {group}",
                f"{tally.paid[group]:,} of {tally.groups[group]:,}, {share}: "
                f"{_amounts(tally, group)}",
            )
        )
    lift = tally.lift()
    lines.append("")
    if isinstance(lift, str):
        lines.append(_line("Lift (texted - holdout)", f"not enough data: {lift}"))
    else:
        lines.append(
            _line(
                "Lift (texted - holdout)",
                f"{_points(lift.difference)} points, 95 % CI {_points(lift.low)} to "
                f"{_points(lift.high)} (Newcombe hybrid score)",
            )
        )
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


# --- the command ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev report",
        description="What the texts recovered: failed payments, outcomes, payments by group, and "
        "the lift of the texted group over the holdout, from the send ledger. Reads "
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
