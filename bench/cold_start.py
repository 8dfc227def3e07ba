"""Cold start: process start to first answer for each function against a bare one, and why."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import requests

from bench import fixtures
from bench.chain import external_seconds, shape, stages, until, within
from bench.env import BenchEnv
from bench.load import Prepared
from bench.procs import first_answer
from bench.report import Headline, Result, Row, markdown_table, section, verdict
from bench.stats import fmt, median, ratio
from bench.webhook_to_text import TEXT_CALL
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
    # The stages up to the text, which the target counts (as benchmark 2 does).
    to_text: int = 0

    @property
    def net(self) -> float:
        return self.seconds - self.external


def _cold_start(env: BenchEnv, name: str, request: Prepared) -> Start:
    """Spawn a `name` process, then send `request` on a new connection every 5 ms until it
    answers; for recover, what its first run spent waiting on external calls too."""
    process = env.function(name)
    method, body, headers = request
    began = time.time()
    answer, seconds = first_answer(
        process,
        lambda url: requests.request(method, url, data=body, headers=headers, timeout=30),
    )
    log = process.log_text()
    if answer.status_code != 200:
        raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:300]}")
    if name != "recover":
        return Start(seconds)
    if '"action": "sent"' not in log:
        raise RuntimeError(f"recover's first run did not send:\n{log[-1500:]}")
    grouped = stages(within(env.calls(), began, time.time()))
    to_text = len(until(grouped, TEXT_CALL))
    return Start(seconds, external_seconds(grouped), len(grouped), shape(grouped), to_text)


def importtime(directory: str, statement: str) -> list[tuple[str, int, float]]:
    """(module, depth, cumulative ms) from `python -X importtime -c STATEMENT`."""
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
        _self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append((name.strip(), depth, int(cumulative_us) / 1000))
    return found


def import_ms(
    directory: str, statement: str, module: str, repeats: int
) -> tuple[float, list[tuple[str, float]]]:
    """The median cumulative ms of importing `module` when `statement` runs, and the top 10 of
    its direct imports by median cumulative ms."""
    if repeats > 1:
        importtime(directory, statement)  # warm the file cache
    totals: list[float] = []
    children: dict[str, list[float]] = {}
    for _ in range(repeats):
        # importtime prints children before their parent: the depth-1 lines since the last
        # depth-0 line belong to the next depth-0 line.
        pending: list[tuple[str, float]] = []
        for name, depth, cumulative in importtime(directory, statement):
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
    for case in batch:
        # Interleaved, so a noisy neighbour slows all three alike.
        starts["bare"].append(_cold_start(env, "bare", ("GET", None, {})))
        starts["ingest"].append(_cold_start(env, "ingest", ("POST", *signed_webhook(case.event))))
        starts["recover"].append(
            _cold_start(env, "recover", ("POST", *fixtures.cloud_event(case.event)))
        )
    n = 1 if quick else 3
    imports = {
        name: import_ms(path, f"import {main}", main, n) for name, (path, main) in IMPORTS.items()
    }
    lazy = {}
    for name, module in LAZY.items():
        directory, main = IMPORTS[name]
        lazy[name] = import_ms(directory, f"import {main}; import {module}", module, n)[0]
    return Measured(starts, imports, lazy)


def run(env: BenchEnv, quick: bool = False) -> Result:
    return render(measure(env, quick), env.latency_ms)


def headlines(bare_ms: float, ingest_ms: float, recover_net_ms: float) -> list[Headline]:
    """Each function's start to its first answer against a function that does nothing."""
    return [
        Headline(
            f"Cold start to the first answer: {label}",
            f"{fmt(ms, 0)} ms ({fmt(ratio(ms, bare_ms), 2)}×)",
            f"at most {TARGET_RATIO:.0f}× the baseline",
            f"a function that does nothing: {fmt(bare_ms, 0)} ms",
            verdict(ratio(ms, bare_ms) <= TARGET_RATIO),
        )
        for label, ms in (
            ("ingest", ingest_ms),
            ("recover, net of its calls to Stripe, Linq and the ledger", recover_net_ms),
        )
    ]


def render(measured: Measured, latency_ms: float) -> Result:
    """The summary rows and the report section."""
    starts, imports, lazy = measured.starts, measured.imports, measured.lazy

    def ms(name: str, net: bool = False) -> float:
        return median([(s.net if net else s.seconds) * 1000 for s in starts[name]])

    bare, repeats = ms("bare"), len(starts["bare"])
    rows = [
        Row(
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
    most_calls = max(starts["recover"], key=lambda s: (s.to_text, s.calls))
    rows.append(
        Row(
            "recover: sequential external calls to the text, cold",
            str(most_calls.to_text),
            f"whole run {most_calls.calls}: {most_calls.chain}",
            f"≤ {COLD_CALLS}",
            verdict(most_calls.to_text <= COLD_CALLS),
        )
    )
    shapes = Counter((s.chain, s.to_text) for s in starts["recover"])
    # Only recover calls out during its first answer; the others' net time is their time.
    table = [
        {
            "function": LABELS[name],
            "first answer p50": fmt(ms(name), 0),
            "external": fmt(median([s.external * 1000 for s in runs]), 0)
            if name == "recover"
            else "–",
            "net": fmt(ms(name, net=True), 0),
            "vs bare": f"{fmt(ratio(ms(name, net=True), bare), 2)}×",
            "`import main`": fmt(imports[name][0], 0),
            "all runs": ", ".join(f"{s.seconds * 1000:.0f}" for s in runs),
        }
        for name, runs in starts.items()
    ]
    imported = [
        f"- **{name}** (`import {IMPORTS[name][1]}` {total:.0f} ms): "
        + "; ".join(f"`{module}` {module_ms:.0f}" for module, module_ms in top)
        for name, (total, top) in imports.items()
    ]
    imported += [
        f"- **{name}**, after its first publish: `import {module}` {lazy[name]:.0f} ms more, in a "
        "background thread (the first publishes go over REST meanwhile)"
        for name, module in LAZY.items()
    ]
    details = section(
        "### 3. Cold start",
        f"Each function process spawned {repeats} times (interleaved), timed from `Popen` to the "
        "first successful answer, retrying on a fresh connection every 5 ms: a GET for the bare "
        "function, a signed webhook for ingest (which includes creating the Pub/Sub client and "
        "publishing), and a Pub/Sub CloudEvent for recover whose whole run (ledger, Stripe, Linq "
        f"at {latency_ms:.0f} ms per call) completes and sends. For recover the external time of "
        "that first run (stages from the journals, as in benchmark 2) is subtracted: the target "
        "compares start-up work, not network time. Times in ms.",
        markdown_table(table),
        "Recover's first run, stages seen (the first *k* up to the text): "
        + "; ".join(
            f"{chain} ({to_text} to the text; {n}×)" for (chain, to_text), n in shapes.most_common()
        ),
        'Import time (`python -X importtime -c "import main"`, median of 3 after one to warm the '
        "file cache): the ten costliest direct imports of each function's module, cumulative ms.",
        imported,
    )
    return Result(NAME, rows, details, headlines=headlines(bare, ms("ingest"), ms("recover", True)))
