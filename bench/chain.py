"""Sequential external calls from request journals: calls that overlap in time run in parallel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One external call as seen by the server: who, what, and its wall-clock interval."""

    service: str
    what: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def standin_calls(service: str, journal: Iterable[dict[str, Any]], latency_s: float) -> list[Call]:
    """Stand-in journal entries as calls lasting the injected latency (their network time)."""
    return [Call(service, e["endpoint"], e["t_wall"], e["t_wall"] + latency_s) for e in journal]


def proxy_calls(service: str, journal: Iterable[dict[str, Any]]) -> list[Call]:
    """Journal-proxy entries as calls lasting their measured round trip."""
    return [Call(service, _ledger_op(e), e["t_start"], e["t_end"]) for e in journal]


# A ledger write by the field that only that write of shared/adapters/ledger.py sets, checked in
# this order: Ledger.claim (a new entry, or taking over one whose lease ran out), record_plan,
# record_text, finish, defer, pause (an outcome without an end or a due time), the sweep's
# release, count_sent (a message counted on its line), a write of the control document (a pause,
# a resume, the surge guard's check);
# Ledger.end_lease (a run that will be retried hands its lease back) sets only the lease.
_WRITES = (
    ("plan", "plan"),
    ("texted_at", "chat recorded"),
    ("finished_at", "outcome"),
    ("due_at", "defer"),
    ("action", "pause"),
    ("released_at", "mark released"),
    ("day", "count sent"),
    ("run", "take over"),
    ("paused", "control"),
)


def _ledger_op(entry: dict[str, Any]) -> str:
    """What a ledger call does, from its method, its path and (for a commit) what it writes."""
    if entry["method"] == "GET":
        return "read"
    if entry["path"].endswith(":runQuery"):
        return "query"
    if entry["path"].endswith(":runAggregationQuery"):
        return "count"
    if not entry["path"].endswith(":commit"):
        return f"{entry['method']} {entry['path']}"
    return " + ".join(_write(write) for write in entry.get("writes") or []) or "commit"


def _write(write: dict[str, Any]) -> str:
    if "exists" in write["precondition"]:
        return "claim"
    fields = set(write["fields"])
    for marker, name in _WRITES:
        if marker in fields:
            return name
    return "end lease" if fields == {"lease_until", "updated_at"} else "commit"


def stages(calls: Iterable[Call]) -> list[list[Call]]:
    """Group calls into stages: a call that starts before every earlier call ended joins them."""
    grouped: list[list[Call]] = []
    stage_end = float("-inf")
    for call in sorted(calls, key=lambda c: c.start):
        if grouped and call.start < stage_end:
            grouped[-1].append(call)
            stage_end = max(stage_end, call.end)
        else:
            grouped.append([call])
            stage_end = call.end
    return grouped


def external_seconds(grouped: list[list[Call]]) -> float:
    """Time spent waiting on the outside: each stage lasts as long as its longest call."""
    return sum(max(c.seconds for c in stage) for stage in grouped)


def within(calls: Iterable[Call], start: float, end: float) -> list[Call]:
    return [c for c in calls if start <= c.start < end]


def until(grouped: list[list[Call]], what: str) -> list[list[Call]]:
    """The stages up to and including the first one holding a call whose `what` contains `what`."""
    for index, stage in enumerate(grouped):
        if any(what in c.what for c in stage):
            return grouped[: index + 1]
    return grouped


def describe(grouped: list[list[Call]]) -> str:
    """`ledger create ∥ stripe GET /v1/invoices/{id} → linq ...` for the report."""
    return " → ".join(" ∥ ".join(f"{c.service} {c.what}" for c in stage) for stage in grouped)


def shape(grouped: list[list[Call]]) -> str:
    """`ledger∥stripe → linq → linq → linq`: who is called, stage by stage."""
    return " → ".join("∥".join(sorted({c.service for c in stage})) for stage in grouped)
