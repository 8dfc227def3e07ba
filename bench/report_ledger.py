"""Report: `./dev report` over a ledger of 100,000 entries in the Firestore emulator.

The ledger is synthetic and seeded (one to four attempts an invoice, a 10 % holdout, treated
invoices that are unreachable, four currencies, payments in every group, quiet-hours deferrals),
written with `:commit` requests of 500 writes (Firestore's most per commit). The report runs as
its own process, as an operator runs it, writing its CSV files and chart too (`--out`, the
heavier path: matplotlib).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from bench.report import INFO, Headline, Result, Row, section, verdict
from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import Ledger
from shared.core.entry import Entry, EntryKey, Payment, State
from shared.core.outcome import Action
from shared.workflow.settings import DEFAULT_FIRESTORE_DATABASE
from standins.emulator import FirestoreEmulator
from standins.stack import REPO
from tools.report import PAGE_SIZE

NAME = "report_ledger"
ENTRIES, QUICK_ENTRIES = 100_000, 5_000
TARGET_MIB = 200
# Firestore takes at most 500 writes in one commit.
COMMIT_WRITES = 500
HEAP = "-Xmx1g"
# Currency -> (its share of the invoices, a typical amount in its minor unit).
CURRENCIES = {"usd": (0.7, 2500), "eur": (0.2, 1900), "gbp": (0.07, 1500), "jpy": (0.03, 3000)}
# Outcomes before the holdout draw: such an invoice is in neither arm.
SKIPS = (Action.NO_PHONE, Action.OPTED_OUT, Action.NOT_OPEN)


def synthetic_ledger(entries: int, now: dt.datetime, seed: int = 14) -> Iterator[Entry | Payment]:
    """`entries` ledger entries over the 60 days before `now`, and the payment of each invoice
    paid, as the product writes them: 10 % of the invoices held out at
    the draw, 65 % treated (of which one in ten unreachable, never texted), the rest never
    reaching the draw; 45 % of treated invoices paid, 30 % of held-out ones, 20 % of the others,
    the texted within hours of their last text."""
    rng = random.Random(seed)
    made = number = 0
    while made < entries:
        number += 1
        invoice = f"in_{number:08d}bench"
        first = now - dt.timedelta(days=rng.uniform(0.01, 60))
        roll = rng.random()
        group = "holdout" if roll < 0.1 else "treated" if roll < 0.75 else "not_assigned"
        reachable = rng.random() >= 0.1
        skip = rng.choice(SKIPS)
        attempts = rng.choice((1, 1, 2, 2, 3, 4))
        currency, amount = _currency(rng)
        rows: list[Entry] = []
        for attempt in range(1, attempts + 1):
            created = first + dt.timedelta(days=3 * (attempt - 1), minutes=rng.uniform(0, 5))
            if created >= now:
                break
            entry = Entry(
                EntryKey(invoice, attempt),
                State.DONE,
                customer_id=f"cus_{number:08d}",
                created_at=created,
                finished_at=created,
                group=None if group == "not_assigned" else group,
            )
            if group == "treated" and reachable:
                texted_at = created + dt.timedelta(seconds=2)
                due_at = None
                if rng.random() < 0.15:
                    due_at = texted_at = created + dt.timedelta(hours=rng.uniform(1, 10))
                entry = replace(entry, action=Action.SENT, texted_at=texted_at, due_at=due_at)
            elif group == "treated":
                entry = replace(entry, action=Action.UNREACHABLE)
            else:
                entry = replace(entry, action=Action.HOLDOUT if group == "holdout" else skip)
            rows.append(entry)
        chance = {"treated": 0.45, "holdout": 0.30, "not_assigned": 0.20}[group]
        last = rows[-1]
        paid_at = (last.texted_at or last.created_at or now) + dt.timedelta(
            minutes=rng.lognormvariate(5, 1.2)
        )
        for entry in rows:
            if made == entries:
                return
            yield entry
            made += 1
        if rng.random() < chance and paid_at < now:
            yield Payment(invoice, paid_at, amount, currency, f"evt_paid_{number:08d}", group=group)


def _currency(rng: random.Random) -> tuple[str, int]:
    [code] = rng.choices(list(CURRENCIES), [share for share, _ in CURRENCIES.values()])
    return code, int(CURRENCIES[code][1] * rng.uniform(0.5, 4))


class LedgerEmulator(FirestoreEmulator):
    """The Firestore emulator with room for the whole ledger: it builds its index of all the
    collection's documents in memory for every query, which a 256 MiB heap cannot at 100,000."""

    def __init__(self, log: Path) -> None:
        super().__init__(log)
        self.command = [HEAP if arg.startswith("-Xmx") else arg for arg in self.command]


def write_ledger(
    emulator_host: str,
    project: str,
    database: str,
    records: Iterable[Entry | Payment],
    only: Sequence[str] | None = None,
) -> int:
    """Write `records` into the emulator's ledger, 500 to a `:commit`, as its administrator;
    returns how many. `only`: change just these attributes of entries that exist."""
    documents = FirestoreDocuments(
        project, database, timeout=(3.05, 60.0), emulator_host=emulator_host
    )
    return Ledger(documents).write_all(records, only)


# Runs tools.report as `python -m tools.report` would, and as it exits writes its own VmHWM (the
# kernel's high-water mark of the process's resident set) to the file named by argv[1].
_REPORT_WITH_PEAK = """
import atexit, re, runpy, sys
peak_file = sys.argv.pop(1)
def peak():
    status = open("/proc/self/status").read()
    open(peak_file, "w").write(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
atexit.register(peak)
runpy.run_module("tools.report", run_name="__main__", alter_sys=True)
"""


def measure(emulator: FirestoreEmulator, out: Path) -> tuple[float, float, float, str]:
    """Run `./dev report --out` against the emulator: wall seconds, CPU seconds, peak RSS in MiB,
    and its output.

    The peak is the report process's own VmHWM, read by the process as it exits, so no growth
    between two samples is missed. Not wait4()'s ru_maxrss: Linux carries the spawning process's
    high-water mark into the child across exec, so that figure would be the bench's own.
    """
    env = {
        **os.environ,
        "GOOGLE_CLOUD_PROJECT": emulator.project,
        "FIRESTORE_DATABASE": DEFAULT_FIRESTORE_DATABASE,
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "PYTHONPATH": str(REPO),
    }
    peak_file = out.parent / "report-peak-kib"
    command = [sys.executable, "-c", _REPORT_WITH_PEAK, str(peak_file), "--out", str(out)]
    began = time.monotonic()
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=output)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"./dev report exited {child.returncode}:\n{text}")
    peak_mib = int(peak_file.read_text()) / 1024
    return seconds, usage.ru_utime + usage.ru_stime, peak_mib, text


def headlines(count: int, seconds: float, peak_mib: float) -> list[Headline]:
    """The report over a large ledger: how long it takes and the memory it needs."""
    return [
        Headline(
            f"`./dev report` over {count:,} ledger entries: time; peak memory",
            f"{seconds:.0f} s; {peak_mib:.0f} MiB",
            f"memory under {TARGET_MIB} MiB",
            "–",
            verdict(peak_mib < TARGET_MIB),
        )
    ]


def run(workdir: Path, quick: bool = False) -> Result:
    count = QUICK_ENTRIES if quick else ENTRIES
    emulator = LedgerEmulator(workdir / "ledger-emulator.log")
    emulator.launch()
    try:
        emulator.wait_ready()
        began = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        written = write_ledger(
            emulator.host,
            emulator.project,
            DEFAULT_FIRESTORE_DATABASE,
            synthetic_ledger(count, now),
        )
        write_seconds = time.monotonic() - began
        seconds, cpu, peak_mib, output = measure(emulator, workdir / "report")
    finally:
        emulator.stop()
    rows = [
        Row(
            f"./dev report over {count:,} ledger entries: wall time",
            f"{seconds:.1f} s",
            f"{written / seconds:,.0f} documents/s",
            f"its own CPU: {cpu:.1f} s",
            INFO,
        ),
        Row(
            "./dev report: peak memory (RSS)",
            f"{peak_mib:.0f} MiB",
            "-",
            f"< {TARGET_MIB} MiB",
            verdict(peak_mib < TARGET_MIB),
        ),
    ]
    details = section(
        "### Report over the ledger",
        f"`./dev report --out DIR` as its own process against the Firestore emulator holding "
        f"{count:,} synthetic entries and the {written - count:,} payments of their invoices "
        f"(written in {write_seconds:.0f} s, {COMMIT_WRITES} to a "
        f"`:commit`), read {PAGE_SIZE} to a query with a projection and folded one invoice at a "
        "time; the CSV files and the chart included. The wall time is mostly the emulator's: it "
        "builds an index of the whole collection for every query (a few seconds each at this "
        f"size); the report's own CPU time was {cpu:.1f} s. Peak memory: the report process's "
        "own VmHWM, read as it exits. Its output:",
        ["```", *output.rstrip().splitlines(), "```"],
    )
    return Result(NAME, rows, details, headlines=headlines(count, seconds, peak_mib))
