"""`./dev report --out DIR`: the report's figures as CSV files and one PNG chart.

- `summary.csv` (`figure,value`): entries, invoices, texts, deferrals, each group's invoices,
  payments and recovery rate, the lift and its 95 % interval (or why there is none), and the
  median and p90 minutes from text to payment.
- `outcomes.csv` (`action,entries`): every entry's outcome, skips by reason included.
- `recovered.csv` (`group,currency,invoices,amount_minor,amount`): payments by group and
  currency, in Stripe's minor units and in the currency's units.
- `recovered_by_day.csv` (`day,group,currency,invoices,amount_minor,amount`): the same by the
  UTC day of the payment.
- `recovery.png`: the recovered amount per day, texted vs holdout, one panel per currency; and
  the funnel failed -> texted -> paid.

matplotlib is a tool of the checkout only (requirements-dev.txt), never deployed.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shared.core.money import decimals
from tools.tally import GROUPS, HOLDOUT, TEXTED, Recovered, Tally

CHART = "recovery.png"
COLOURS = {TEXTED: "#1f77b4", HOLDOUT: "#ff7f0e"}


def _units(amount: int, currency: str) -> Decimal:
    """Minor units as the currency's own units (2500 usd -> 25.00), exactly."""
    return Decimal(amount).scaleb(-decimals(currency))


def summary(tally: Tally) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("entries", tally.entries),
        ("invoices", tally.invoices),
        ("texts_sent", tally.texts),
        ("entries_deferred", tally.deferred),
    ]
    for group in GROUPS:
        rate = tally.rate(group)
        rows += [
            (f"{group}_invoices", tally.groups[group]),
            (f"{group}_paid", tally.paid[group]),
            (f"{group}_rate", "" if rate is None else f"{rate:.4f}"),
        ]
    lift = tally.lift()
    if isinstance(lift, str):
        rows += [("lift", ""), ("lift_low_95", ""), ("lift_high_95", ""), ("lift_note", lift)]
    else:
        rows += [
            ("lift", f"{lift.difference:.4f}"),
            ("lift_low_95", f"{lift.low:.4f}"),
            ("lift_high_95", f"{lift.high:.4f}"),
            ("lift_note", "Newcombe hybrid score interval"),
        ]
    timing = tally.minutes_to_pay()
    rows += [
        ("minutes_to_pay_median", "" if timing is None else f"{timing[0]:.1f}"),
        ("minutes_to_pay_p90", "" if timing is None else f"{timing[1]:.1f}"),
        ("payments_timed", len(tally.minutes)),
    ]
    return rows


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _money(totals: Recovered, currency: str) -> tuple[int, int, Decimal]:
    return totals.invoices, totals.amount, _units(totals.amount, currency)


def write(tally: Tally, directory: Path) -> list[Path]:
    """Write the CSV files and the chart into `directory` (made if missing); returns them."""
    directory.mkdir(parents=True, exist_ok=True)
    money = ("invoices", "amount_minor", "amount")
    return [
        _write_csv(directory / "summary.csv", ("figure", "value"), summary(tally)),
        _write_csv(
            directory / "outcomes.csv", ("action", "entries"), sorted(tally.outcomes.items())
        ),
        _write_csv(
            directory / "recovered.csv",
            ("group", "currency", *money),
            (
                (group, currency, *_money(totals, currency))
                for (group, currency), totals in sorted(tally.recovered.items())
            ),
        ),
        _write_csv(
            directory / "recovered_by_day.csv",
            ("day", "group", "currency", *money),
            (
                (day.isoformat(), group, currency, *_money(totals, currency))
                for (day, group, currency), totals in sorted(tally.by_day.items())
            ),
        ),
        chart(tally, directory / CHART),
    ]


# Up to this many days of payments, each day gets its own label; more, and matplotlib spaces them.
MAX_LABELLED_DAYS = 14


def _noon(day: dt.date) -> float:
    return float(mdates.date2num(day)) + 0.5


def chart(tally: Tally, path: Path) -> Path:
    """The PNG: one panel of daily recovered amounts per currency, then the funnel."""
    currencies = sorted({currency for (_, currency) in tally.recovered})
    # The Agg canvas draws straight to a PNG: no display, no GUI toolkit, the same picture on a
    # laptop, a server and CI (pyplot would pick a backend from the environment).
    figure = Figure(figsize=(9, 2.4 * (len(currencies) + 1)), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(currencies) + 1, 1, squeeze=False)[:, 0]
    every_day = sorted({day for (day, _, _) in tally.by_day})
    for axes, currency in zip(panels, currencies, strict=False):
        days = sorted({day for (day, _, c) in tally.by_day if c == currency})
        # Side by side: each group's bar 0.4 of a day wide, either side of the day's noon, so a
        # day's bars sit inside the day.
        for offset, group in ((-0.2, TEXTED), (0.2, HOLDOUT)):
            size = tally.groups[group]
            totals = [tally.by_day.get((day, group, currency), Recovered()) for day in days]
            axes.bar(
                [_noon(day) + offset for day in days],
                [float(_units(t.amount, currency)) for t in totals],
                width=0.4,
                color=COLOURS[group],
                label=f"{group} ({size:,} invoice{'' if size == 1 else 's'})",
            )
        # The same days on every currency's panel, so they read one above the other.
        axes.set_xlim(_noon(every_day[0]) - 1, _noon(every_day[-1]) + 1)
        if len(every_day) <= MAX_LABELLED_DAYS:
            # A label under each day's bars.
            axes.set_xticks([_noon(day) for day in every_day])
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        else:
            locator = mdates.AutoDateLocator()
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.set_title(f"Recovered per day ({currency.upper()}, UTC days)", loc="left")
        axes.set_ylabel(currency.upper())
        # Headroom above the tallest bar, so the legend covers none.
        axes.margins(y=0.35)
        axes.legend(loc="upper left", ncols=2, frameon=False)
    funnel = panels[-1]
    steps = [
        ("failed", tally.invoices),
        ("texted", tally.groups[TEXTED]),
        ("paid after a text", tally.paid[TEXTED]),
    ]
    funnel.barh([name for name, _ in reversed(steps)], [n for _, n in reversed(steps)])
    for name, count in steps:
        share = f" ({count / tally.invoices:.0%})" if tally.invoices else ""
        funnel.annotate(f" {count:,}{share}", (count, name), va="center")
    funnel.set_title("Funnel (invoices)", loc="left")
    funnel.margins(x=0.25)
    figure.savefig(path, format="png", dpi=80, pil_kwargs={"optimize": True})
    return path
