"""Run the benchmarks and print one table: `./dev bench [--quick] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import burst, cold_start, cost, ingest, report_ledger, surge, sweep, webhook_to_text
from bench.env import LATENCY_MS, BenchEnv
from bench.report import MISS, Result, machine, render, run_meta, text_table, write
from standins.stack import REPO

NAMES = (
    "ingest",
    "webhook_to_text",
    "cold_start",
    "burst",
    "cost",
    "sweep",
    "report_ledger",
    "surge",
)
# Benchmarks 1-3 share one stack; webhook_to_text goes first, so its first event meets a
# recover process that has served nothing yet.
SHARED = {"webhook_to_text": webhook_to_text, "ingest": ingest, "cold_start": cold_start}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run with small counts (about a minute)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only these (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown file for the results (default: BENCHMARKS.md on a full run, none otherwise)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory and logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = set(args.only or NAMES)
    output = args.output
    if output is None and not args.quick and not args.only:
        output = REPO / "BENCHMARKS.md"
    workdir = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    began = time.monotonic()
    started = datetime.now(UTC)
    results: dict[str, Result] = {}

    def timed(name: str, step: Callable[[], Result]) -> None:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        results[name] = step()
        print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    try:
        shared = [name for name in SHARED if name in chosen]
        if shared:
            print("bench: starting the stack ...", file=sys.stderr, flush=True)
            (workdir / "shared").mkdir(exist_ok=True)
            env = BenchEnv(workdir / "shared", LATENCY_MS)
            env.start()
            try:
                for name in shared:
                    timed(name, functools.partial(SHARED[name].run, env, args.quick))
            finally:
                env.stop()
        if "burst" in chosen:
            timed("burst", lambda: burst.run(workdir, args.quick))
        if "cost" in chosen:
            timed("cost", lambda: cost.run(workdir, results, args.quick))
        if "sweep" in chosen:
            # Compared with the burst at the same slots when that ran.
            timed("sweep", lambda: sweep.run(workdir, results, args.quick))
        if "report_ledger" in chosen:
            timed("report_ledger", lambda: report_ledger.run(workdir, args.quick))
        if "surge" in chosen:
            timed("surge", lambda: surge.run(workdir, args.quick))
    finally:
        if args.keep:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ordered = [results[name] for name in NAMES if name in results]
    elapsed = time.monotonic() - began
    command = (
        "./dev bench"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {name}" for name in args.only or ())
    )
    meta = machine() | run_meta(started, command, elapsed, LATENCY_MS)
    print()
    print(text_table(ordered))
    print()
    print(f"{command}: {elapsed:.0f} s on {meta['CPUs']} CPUs ({meta['CPU model']})")
    if output is not None:
        write(output, render(ordered, meta))
        print(f"written to {output}")
    misses = sum(1 for result in ordered for row in result.rows if row.verdict == MISS)
    if misses:
        print(f"{misses} target(s) missed: see BENCHMARKS.md for why and by how much")
    return 0


if __name__ == "__main__":
    sys.exit(main())
