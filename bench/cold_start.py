"""Cold start: process start to first answer for each function against a bare one, and why."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import requests

from bench import fixtures
from bench.chain import external_seconds, shape, stages, within
from bench.env import BenchEnv
from bench.report import Result, Row, markdown_table, verdict
from bench.stats import fmt, median, ratio
from standins import builders
from standins.processes import FunctionProcess
from standins.stack import REPO, base_env, signed_webhook

NAME = "cold start"
TARGET_RATIO = 2.0
COLD_CALLS = 5
# name -> (directory to import from, module): what `python -X importtime -c "import main"` loads.
IMPORTS = {
    "bare": ("bench/baselines", "bare_main"),
    "ingest": ("ingest_fn", "main"),
    "recover": ("recover_fn", "main"),
}
# Imported after the first publish, in a background thread off the request path (the first
# publishes go over REST): measured on top of `import main`.
LAZY = {"ingest": "google.pubsub_v1"}
LABELS = {"bare": "bare function", "ingest": "ingest", "recover": "recover"}


@dataclass(frozen=True)
class Start:
    """One cold start: seconds from spawning the process to its first successful answer."""

    seconds: float
    external: float = 0.0
    calls: int = 0
    chain: str = ""

    @property
    def net(self) -> float:
        return self.seconds - self.external


def _first_answer(process: FunctionProcess, send: Callable[[], requests.Response]) -> float:
    """Spawn, then try the request on a new connection every 5 ms until it answers 200."""
    process.launch()
    deadline = process.spawned_at + 60
    while True:
        try:
            answer = send()
        except requests.ConnectionError:
            process.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} never answered") from None
            time.sleep(0.005)
            continue
        seconds = time.monotonic() - process.spawned_at
        if answer.status_code != 200:
            raise RuntimeError(f"{process.name} answered {answer.status_code}: {answer.text[:300]}")
        return seconds


def _start_bare(env: BenchEnv) -> Start:
    process = env.function("bare")
    try:
        return Start(_first_answer(process, lambda: requests.get(process.url, timeout=30)))
    finally:
        process.stop()


def _start_ingest(env: BenchEnv) -> Start:
    process = env.function("ingest")
    customer = builders.customer(phone=fixtures.next_phone())
    body, headers = signed_webhook(builders.payment_failed_event(builders.invoice(customer)))
    try:
        return Start(
            _first_answer(
                process, lambda: requests.post(process.url, data=body, headers=headers, timeout=30)
            )
        )
    finally:
        process.stop()


def _start_recover(env: BenchEnv, case: fixtures.Case) -> Start:
    process = env.function("recover")
    body, headers = fixtures.cloud_event(case.event)
    began = time.time()
    try:
        seconds = _first_answer(
            process, lambda: requests.post(process.url, data=body, headers=headers, timeout=30)
        )
        log = process.log_text()
    finally:
        process.stop()
    if '"action": "sent"' not in log:
        raise RuntimeError(f"recover's first run did not send:\n{log[-1500:]}")
    grouped = stages(within(env.calls(), began, time.time()))
    return Start(seconds, external_seconds(grouped), len(grouped), shape(grouped))


def importtime(directory: str, statement: str) -> list[tuple[str, int, float, float]]:
    """(module, depth, self ms, cumulative ms) from `python -X importtime -c STATEMENT`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO / directory,
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append((name.strip(), depth, int(self_us) / 1000, int(cumulative_us) / 1000))
    return found


def import_breakdown(
    directory: str, module: str, repeats: int
) -> tuple[float, list[tuple[str, float]]]:
    """Median total of `import MODULE` and the top 10 of its direct imports by cumulative time."""
    if repeats > 1:
        importtime(directory, f"import {module}")  # warm the file cache
    totals: list[float] = []
    children: dict[str, list[float]] = {}
    for _ in range(repeats):
        # importtime prints children before their parent: the depth-1 lines since the last
        # depth-0 line belong to the next depth-0 line.
        pending: list[tuple[str, float]] = []
        for name, depth, _self_ms, cumulative in importtime(directory, f"import {module}"):
            if depth == 1:
                pending.append((name, cumulative))
            elif depth == 0:
                if name == module:
                    totals.append(cumulative)
                    for child, value in pending:
                        children.setdefault(child, []).append(value)
                pending = []
    top = sorted(((name, median(v)) for name, v in children.items()), key=lambda x: -x[1])[:10]
    return median(totals), top


def lazy_import(directory: str, module: str, lazy: str, repeats: int) -> float:
    """Median cumulative ms of importing `lazy` once `module` is loaded (what a first call pays)."""
    values = []
    for _ in range(repeats):
        for name, depth, _s, cumulative in importtime(directory, f"import {module}; import {lazy}"):
            if depth == 0 and name == lazy:
                values.append(cumulative)
    return median(values)


@dataclass(frozen=True)
class Measured:
    """Each function's cold starts, and what importing its module costs (median ms)."""

    starts: dict[str, list[Start]]
    imports: dict[str, tuple[float, list[tuple[str, float]]]]
    lazy: dict[str, float]


def measure(env: BenchEnv, quick: bool) -> Measured:
    repeats = 1 if quick else 9
    batch = fixtures.cases(repeats)
    fixtures.load(env.stack.stripe, batch)
    starts: dict[str, list[Start]] = {"bare": [], "ingest": [], "recover": []}
    for index in range(repeats):
        # Interleaved, so a noisy neighbour slows all three alike.
        starts["bare"].append(_start_bare(env))
        starts["ingest"].append(_start_ingest(env))
        starts["recover"].append(_start_recover(env, batch[index]))
    import_repeats = 1 if quick else 3
    imports = {name: import_breakdown(*IMPORTS[name], import_repeats) for name in IMPORTS}
    lazy = {
        name: lazy_import(*IMPORTS[name], module, import_repeats) for name, module in LAZY.items()
    }
    return Measured(starts, imports, lazy)


def run(env: BenchEnv, quick: bool = False) -> Result:
    return render(measure(env, quick), env.latency_ms)


def render(measured: Measured, latency_ms: float) -> Result:
    """The summary rows, the report section and the figures as data."""
    starts, imports, lazy = measured.starts, measured.imports, measured.lazy

    def ms(name: str, net: bool = False) -> float:
        return median([(s.net if net else s.seconds) * 1000 for s in starts[name]])

    bare, repeats = ms("bare"), len(starts["bare"])
    rows = [
        Row(
            NAME,
            figure,
            fmt(ms(name, net), 0),
            f"bare {fmt(bare, 0)}",
            f"{fmt(ratio(ms(name, net), bare), 2)}× (≤ {TARGET_RATIO:.0f}×)",
            verdict(ratio(ms(name, net), bare) <= TARGET_RATIO),
        )
        for name, figure, net in (
            ("ingest", "ingest: start → first webhook answered (ms)", False),
            ("recover", "recover: start → first run answered, net of external calls (ms)", True),
        )
    ]
    most_calls = max(starts["recover"], key=lambda s: s.calls)
    rows.append(
        Row(
            NAME,
            "recover: sequential external calls, cold",
            str(most_calls.calls),
            most_calls.chain,
            f"≤ {COLD_CALLS}",
            verdict(most_calls.calls <= COLD_CALLS),
        )
    )
    shapes = Counter(s.chain for s in starts["recover"])
    # Only recover calls out during its first answer; the others' net time is their time.
    table = [
        [
            LABELS[name],
            fmt(ms(name), 0),
            fmt(median([s.external * 1000 for s in runs]), 0) if name == "recover" else "–",
            fmt(ms(name, net=True), 0),
            f"{fmt(ratio(ms(name, net=True), bare), 2)}×",
            fmt(imports[name][0], 0),
            ", ".join(f"{s.seconds * 1000:.0f}" for s in runs),
        ]
        for name, runs in starts.items()
    ]
    details = [
        "### 3. Cold start",
        "",
        f"Each function process spawned {repeats} times (interleaved), timed from `Popen` to the "
        "first successful answer, retrying on a fresh connection every 5 ms: a GET for the bare "
        "function, a signed webhook for ingest (which includes creating the Pub/Sub client and "
        "publishing), and a Pub/Sub CloudEvent for recover whose whole run (ledger, Stripe, Linq "
        f"at {latency_ms:.0f} ms per call) completes and sends. For recover the external "
        "time of that first run (stages from the journals, as in benchmark 2) is subtracted: the "
        "target compares start-up work, not network time. Times in ms.",
        "",
        *markdown_table(
            [
                "function",
                "first answer p50",
                "external",
                "net",
                "vs bare",
                "`import main`",
                "all runs",
            ],
            table,
        ),
        "",
        "Recover's first run, stages seen: "
        + "; ".join(f"{shape_} ({n}×)" for shape_, n in shapes.most_common()),
        "",
        'Import time (`python -X importtime -c "import main"`, median of 3 after one to warm the '
        "file cache): the ten costliest direct imports of each function's module, cumulative ms.",
        "",
    ]
    for name, (total, top) in imports.items():
        listed = "; ".join(f"`{module}` {ms_:.0f}" for module, ms_ in top)
        details.append(f"- **{name}** (`import {IMPORTS[name][1]}` {total:.0f} ms): {listed}")
    for name, module in LAZY.items():
        details.append(
            f"- **{name}**, after its first publish: `import {module}` {lazy[name]:.0f} ms more, "
            "in a background thread (the first publishes go over REST meanwhile)"
        )
    data = {
        "bare_ms": bare,
        "ingest_ms": ms("ingest"),
        "recover_ms": ms("recover"),
        "recover_net_ms": ms("recover", net=True),
        "imports": imports,
        "lazy": lazy,
    }
    return Result(NAME, rows, details, data)
