"""`./dev report --out DIR`: the report's figures as CSV files and one PNG chart.

- `summary.csv` (`figure,value`): entries, invoices, texts, entries not texted, deferrals (and
  those of them texted since), each group's invoices, payments and recovery rate (with its 95 %
  interval for the two arms), the lift and its 95 % interval (or why there is none), the
  per-protocol figures (the treated invoices that were texted), and the median and p90 minutes
  from text to payment.
- `outcomes.csv` (`action,entries`): every entry's outcome, skips by reason included.
- `recovered.csv` (`group,currency,invoices,amount_minor,amount`): payments by group and
  currency, in Stripe's minor units and in the currency's units.
- `recovered_by_day.csv` (`day,group,currency,invoices,amount_minor,amount`): the same by the
  UTC day of the payment.
- `recovered_by_decline_code.csv` (`decline_code,group,invoices,paid,rate`): invoices and those
  paid by the decline code of their first failure and the group they were assigned, the code of
  the most invoices first.
- `recovery.png`: each arm's recovery rate with its 95 % interval, and the lift with its own; the
  amount recovered per assigned invoice, cumulative by day, treated against holdout, one panel
  per currency; and the funnel failed -> reached the draw -> treated -> texted -> paid.

matplotlib is a tool of the checkout only (requirements-dev.txt), never deployed.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shared.core.attribution import GROUPS, HOLDOUT, TREATED
from shared.core.money import decimals
from tools.lift import Lift, rate_interval
from tools.tally import Recovered, Tally

CHART = "recovery.png"
# The two arms of the comparison; not_assigned invoices were never candidates for a text.
ARMS = (TREATED, HOLDOUT)
COLOURS = {TREATED: "#1f77b4", HOLDOUT: "#ff7f0e"}


def _units(amount: int, currency: str) -> Decimal:
    """Minor units as the currency's own units (2500 usd -> 25.00), exactly."""
    return Decimal(amount).scaleb(-decimals(currency))


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _interval(tally: Tally, group: str) -> tuple[float, float] | None:
    """The group's recovery rate's 95 % interval, or None without invoices."""
    if not tally.groups[group]:
        return None
    return rate_interval(tally.paid[group], tally.groups[group])


def summary(tally: Tally) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("entries", tally.entries),
        ("invoices", tally.invoices),
        ("texts_sent", tally.texts),
        ("texted_invoices", tally.texted_invoices),
        ("entries_not_texted", tally.entries - tally.texts),
        ("entries_deferred", tally.deferred),
        ("entries_deferred_texted", tally.deferred_texted),
    ]
    for group in GROUPS:
        rate = tally.rate(group)
        rows += [
            (f"{group}_invoices", tally.groups[group]),
            (f"{group}_paid", tally.paid[group]),
            (f"{group}_rate", _share(rate)),
        ]
        if group in ARMS:
            low, high = _interval(tally, group) or (None, None)
            rows += [(f"{group}_rate_low_95", _share(low)), (f"{group}_rate_high_95", _share(high))]
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
    rows += [
        ("per_protocol_texted_invoices", tally.treated_texted),
        ("per_protocol_texted_paid", tally.treated_texted_paid),
        ("per_protocol_texted_rate", _share(tally.per_protocol_rate())),
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


def _by_decline_code(tally: Tally) -> list[tuple[str, str, int, int, str]]:
    rows = []
    for code in tally.decline_codes():
        for group in GROUPS:
            invoices, paid = tally.declines[code, group], tally.declines_paid[code, group]
            if invoices:
                rows.append((code, group, invoices, paid, _share(paid / invoices)))
    return rows


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
        _write_csv(
            directory / "recovered_by_decline_code.csv",
            ("decline_code", "group", "invoices", "paid", "rate"),
            _by_decline_code(tally),
        ),
        chart(tally, directory / CHART),
    ]


# Up to this many days of payments, each day gets its own label; more, and matplotlib spaces them.
MAX_LABELLED_DAYS = 14
PANEL_HEIGHT = 2.4


def chart(tally: Tally, path: Path) -> Path:
    """Write the chart as a PNG to `path`."""
    figure(tally).savefig(path, format="png", dpi=80, pil_kwargs={"optimize": True})
    return path


def figure(tally: Tally) -> Figure:
    """The chart: the rates and the lift first, then the amount recovered per assigned invoice
    over time, one panel per currency, then the funnel."""
    currencies = sorted({currency for (group, currency) in tally.recovered if group in ARMS})
    # The Agg canvas draws straight to a PNG: no display, no GUI toolkit, the same picture on a
    # laptop, a server and CI (pyplot would pick a backend from the environment).
    drawn = Figure(figsize=(9, PANEL_HEIGHT * (len(currencies) + 2)), layout="constrained")
    FigureCanvasAgg(drawn)
    grid = drawn.add_gridspec(len(currencies) + 2, 2, width_ratios=(3, 2))
    _rates(tally, drawn.add_subplot(grid[0, 0]))
    _lift(tally.lift(), drawn.add_subplot(grid[0, 1]))
    # The same days on every currency's panel, so they read one above the other.
    days = sorted({day for (day, group, _) in tally.by_day if group in ARMS})
    for row, currency in enumerate(currencies, start=1):
        _cumulative(tally, currency, days, drawn.add_subplot(grid[row, :]))
    _funnel(tally, drawn.add_subplot(grid[-1, :]))
    return drawn


def _rates(tally: Tally, axes: Axes) -> None:
    """Each arm's recovery rate, with its 95 % interval as an error bar."""
    labels = []
    for row, group in enumerate(ARMS):
        size = tally.groups[group]
        labels.append(f"{group}\n({size:,} invoice{'' if size == 1 else 's'})")
        found = _interval(tally, group)
        rate = tally.rate(group)
        if found is None or rate is None:
            axes.annotate(" no invoices", (0, row), va="center")
            continue
        low, high = found
        axes.errorbar(
            [rate * 100],
            [row],
            xerr=[[(rate - low) * 100], [(high - rate) * 100]],
            fmt="o",
            color=COLOURS[group],
            capsize=4,
        )
        axes.annotate(
            f" {rate:.1%} ({tally.paid[group]:,} of {size:,})",
            (high * 100, row),
            va="center",
        )
    axes.set_yticks(range(len(ARMS)), labels)
    axes.set_ylim(len(ARMS) - 0.5, -0.5)
    # Room right of 100 % for the label of a rate near it.
    axes.set_xlim(0, 130)
    axes.set_xticks(range(0, 101, 20))
    axes.set_xlabel("invoices paid (%)")
    axes.set_title("Recovery rate as assigned, 95 % interval", loc="left")


def _lift(lift: Lift | str, axes: Axes) -> None:
    """The lift and its 95 % interval, in points, against 0; or why there is none."""
    axes.set_title(f"Lift ({TREATED} - {HOLDOUT})", loc="left")
    if isinstance(lift, str):
        axes.set_axis_off()
        reasons = lift.replace("; ", ";\n")
        axes.text(0, 0.5, f"not enough data:\n{reasons}", va="center", wrap=True)
        return
    axes.axvline(0, color="grey", linewidth=1)
    axes.errorbar(
        [lift.difference * 100],
        [0],
        xerr=[[(lift.difference - lift.low) * 100], [(lift.high - lift.difference) * 100]],
        fmt="o",
        color="black",
        capsize=4,
    )
    axes.annotate(
        f"{lift.difference * 100:+.1f} points\n({lift.low * 100:+.1f} to {lift.high * 100:+.1f})",
        (lift.difference * 100, 0),
        xytext=(0, 10),
        textcoords="offset points",
        ha="center",
    )
    axes.set_yticks([])
    axes.set_xlabel("points")
    axes.margins(x=0.3, y=1.5)


def _cumulative(tally: Tally, currency: str, days: list[dt.date], axes: Axes) -> None:
    """The amount recovered so far per invoice of each arm, by UTC day: the arms are compared
    per invoice assigned, so the holdout's small size does not make its line small."""
    for group in ARMS:
        size = tally.groups[group]
        if not size:
            continue
        total, points = Decimal(0), []
        for day in days:
            total += _units(tally.by_day.get((day, group, currency), Recovered()).amount, currency)
            points.append(float(total / size))
        # Each day's total held across the day, up to the end of the last: one day is a line too.
        axes.step(
            [_start(day) for day in days] + [_start(days[-1]) + 1],
            points + points[-1:],
            where="post",
            color=COLOURS[group],
            label=f"{group} ({size:,} invoice{'' if size == 1 else 's'})",
        )
    axes.set_xlim(_start(days[0]) - 0.5, _start(days[-1]) + 1.5)
    if len(days) <= MAX_LABELLED_DAYS:
        axes.set_xticks([_noon(day) for day in days])
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    else:
        locator = mdates.AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_title(
        f"Recovered per assigned invoice, cumulative ({currency.upper()}, UTC days)", loc="left"
    )
    axes.set_ylabel(currency.upper())
    # Headroom above the highest line, so the legend covers none; amounts start at 0.
    axes.margins(y=0.35)
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", ncols=2, frameon=False)


def _funnel(tally: Tally, axes: Axes) -> None:
    steps = [
        ("failed", tally.invoices),
        ("reached the draw", tally.groups[TREATED] + tally.groups[HOLDOUT]),
        ("treated", tally.groups[TREATED]),
        ("texted", tally.treated_texted),
        ("paid after a text", tally.treated_texted_paid),
    ]
    axes.barh([name for name, _ in reversed(steps)], [n for _, n in reversed(steps)])
    for name, count in steps:
        share = f" ({count / tally.invoices:.0%})" if tally.invoices else ""
        axes.annotate(f" {count:,}{share}", (count, name), va="center")
    axes.set_title("Funnel (invoices)", loc="left")
    axes.margins(x=0.25)


def _start(day: dt.date) -> float:
    return float(mdates.date2num(day))


def _noon(day: dt.date) -> float:
    return _start(day) + 0.5
