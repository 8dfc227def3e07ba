"""Cost: Cloud Run functions (2nd gen) list prices applied to the measured CPU time and memory."""

from __future__ import annotations

import math
from pathlib import Path

from bench import burst
from bench.env import LATENCY_MS
from bench.report import INFO, Headline, Result, Row, markdown_table, section
from bench.stats import fmt

NAME = "cost"
PRICES_AS_OF = "2026-11-25"
# Cloud Run, Tier 1 regions, request-based billing ("CPU only allocated during request
# processing"), which is how Cloud Run functions (2nd gen) are billed. CPU: the stored copy of
# cloud.google.com/run/pricing; memory and requests: the same table as quoted by third-party
# 2025 guides (cloudchipr.com, cloudwebschool.com). Not confirmed live on PRICES_AS_OF.
CPU_PER_VCPU_S = 0.000024
MEMORY_PER_GIB_S = 0.0000025
PER_MILLION_REQUESTS = 0.40
FREE_TIER = "180,000 vCPU-s, 360,000 GiB-s and 2 million requests per month per billing account"
BILLING_GRANULARITY_S = 0.1
# deploy.sh: both functions at 256 MiB, which Cloud Run functions pair with 0.167 vCPU.
MEMORY_GIB = 0.25
VCPU = 0.167


def billed_seconds(seconds: float) -> float:
    return math.ceil(seconds / BILLING_GRANULARITY_S - 1e-9) * BILLING_GRANULARITY_S


def instance_cost(seconds: float) -> float:
    return seconds * (VCPU * CPU_PER_VCPU_S + MEMORY_GIB * MEMORY_PER_GIB_S)


def headlines(
    total: float, cpu_only: float, cpu: dict[str, float], rss: dict[str, float]
) -> list[Headline]:
    """What 1,000 recoveries cost on Google Cloud, and the CPU and memory one takes."""
    return [
        Headline(
            "Google Cloud per 1,000 recoveries (list prices, before the free tier)",
            f"${total:.4f}",
            "–",
            f"the CPU actually used: ${cpu_only:.5f}",
        ),
        Headline(
            "CPU per recovery (recover + ingest); peak memory",
            f"{cpu['recover'] * 1000:.1f} + {cpu['ingest'] * 1000:.1f} ms; "
            f"{rss['recover']:.0f} / {rss['ingest']:.0f} MiB",
            f"fits the {MEMORY_GIB * 1024:.0f} MiB deployed: "
            f"{'yes' if max(rss.values()) < MEMORY_GIB * 1024 else 'NO'}",
            "–",
        ),
    ]


def run(workdir: Path, earlier: dict[str, Result], quick: bool = False) -> Result:
    """`earlier`: the results so far by `--only` name; the burst's and webhook→text's are used
    when they ran, else a burst of its own and four calls' latency."""
    if "burst" in earlier:
        one: burst.Run = earlier["burst"].data["run"]
        source = f"the {one.events}-event burst (benchmark 4)"
    else:
        one = burst.burst(workdir, 4, 60 if quick else 300)
        source = f"a {one.events}-event burst at {one.slots} slots"
    waiting = (
        earlier["webhook_to_text"].data["warm_external_all_ms"] / 1000
        if "webhook_to_text" in earlier
        else 4 * LATENCY_MS / 1000
    )
    cpu = {name: one.cpu[name] / one.events for name in ("ingest", "recover")}
    rss = one.rss
    # Request time on the deployed size: waiting on the outside, plus the CPU work stretched by
    # the fraction of a vCPU the instance gets. Ingest waits ~1 ms on Pub/Sub, recover on its calls.
    wall = {"ingest": 0.001 + cpu["ingest"] / VCPU, "recover": waiting + cpu["recover"] / VCPU}
    billed = {name: billed_seconds(seconds) for name, seconds in wall.items()}
    per_thousand = {name: 1000 * instance_cost(billed[name]) for name in wall}
    requests_cost = 1000 * 2 * PER_MILLION_REQUESTS / 1e6
    total = sum(per_thousand.values()) + requests_cost
    fits = max(rss.values()) < MEMORY_GIB * 1024
    cpu_only = 1000 * sum(cpu.values()) * CPU_PER_VCPU_S
    rows = [
        Row(
            "Cloud Run functions, per 1,000 recoveries (USD)",
            f"${total:.4f}",
            f"CPU actually used: ${cpu_only:.5f}",
            f"list prices of {PRICES_AS_OF}, free tier not applied",
            INFO,
        ),
        Row(
            "CPU ms per recovery (recover + ingest)",
            f"{cpu['recover'] * 1000:.1f} + {cpu['ingest'] * 1000:.1f}",
            f"peak RSS {rss['recover']:.0f} / {rss['ingest']:.0f} MiB",
            f"fits {MEMORY_GIB * 1024:.0f} MiB: {'yes' if fits else 'NO'}",
            INFO,
        ),
    ]
    table = [
        {
            "function": name,
            "CPU ms/event": fmt(cpu[name] * 1000, 1),
            "peak RSS MiB": f"{rss[name]:.0f}",
            f"request ms at {VCPU} vCPU": fmt(wall[name] * 1000, 0),
            "billed ms": fmt(billed[name] * 1000, 0),
            "per 1,000": f"${per_thousand[name]:.5f}",
        }
        for name in ("ingest", "recover")
    ]
    for label, cost in (
        ("requests (2 per recovery)", f"${requests_cost:.5f}"),
        ("**total**", f"**${total:.4f}**"),
    ):
        table.append(dict.fromkeys(table[0], "") | {"function": label, "per 1,000": cost})
    details = section(
        "### 5. Cost",
        f"CPU time (user+system of each function's processes) and peak RSS from {source}. Prices: "
        "Cloud Run request-based billing, Tier 1 regions (how Cloud Run functions 2nd gen are "
        f"billed): ${CPU_PER_VCPU_S:.6f} per vCPU-second, ${MEMORY_PER_GIB_S:.7f} per GiB-second, "
        f"${PER_MILLION_REQUESTS:.2f} per million requests, billed time rounded up to "
        f"{BILLING_GRANULARITY_S * 1000:.0f} ms; the CPU price is from the stored copy of "
        "cloud.google.com/run/pricing, memory and request prices from third-party 2025 copies of "
        f"the same table; none could be confirmed live on {PRICES_AS_OF}, so treat them as "
        f"assumptions. Free tier ({FREE_TIER}) not subtracted. Deployed size as deploy.sh: "
        f"{MEMORY_GIB * 1024:.0f} MiB with {VCPU} vCPU, concurrency 1, so an instance is billed "
        "for the whole request: time waiting on the outside (recover: the warm run's external "
        f"stages from benchmark 2, {waiting * 1000:.0f} ms at {LATENCY_MS:.0f} ms per call; "
        f"ingest: about 1 ms to Pub/Sub) plus the measured CPU time divided by {VCPU} vCPU. Slower "
        "real APIs lengthen recover's billed time proportionally. Pub/Sub, Firestore and egress "
        "are billed separately and not included.",
        markdown_table(table),
    )
    return Result(NAME, rows, details, headlines=headlines(total, cpu_only, cpu, rss))
