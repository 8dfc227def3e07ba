"""The send ledger on the Firestore emulator, attacked: racing claims and takeovers, stale
writers, forced interleavings. At most one run ever holds a failed payment, proven by the record.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from shared.adapters import ledger as ledger_module
from shared.adapters.ledger import ACTIVE, DONE, FAILED, Held, Lease, Ledger
from shared.core.decide import Plan
from shared.core.errors import LeaseLostError
from shared.core.event import FailedPayment
from shared.core.outcome import Action, failed, sent, skipped

DATABASE = "dunning"
PLAN = Plan("+14155550100", "Hi Jane. Reply STOP", "https://invoice.stripe.com/i/x", "+12025550100")


@pytest.fixture
def ledger(firestore, monkeypatch) -> Ledger:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)
    return Ledger(firestore.project, DATABASE)


@pytest.fixture
def short_ledger(firestore, monkeypatch) -> Ledger:
    """Leases of one second, to watch them run out."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)
    return Ledger(firestore.project, DATABASE, lease=dt.timedelta(seconds=1))


@pytest.fixture
def key() -> str:
    return f"in_{uuid.uuid4().hex[:12]}-1"


def job(event: str = "evt_a") -> FailedPayment:
    return FailedPayment(event, "in_1", "cus_1", 1, False)


def record(firestore, key: str) -> dict[str, Any]:
    url = (
        f"{firestore.url}/v1/projects/{firestore.project}/databases/{DATABASE}/documents/"
        f"{ledger_module.COLLECTION}/{key}"
    )
    answer = requests.get(url, headers={"Authorization": "Bearer owner"}, timeout=5)
    answer.raise_for_status()
    return {k: ledger_module._decode(v) for k, v in answer.json()["fields"].items()}


def race(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """`attempt(i)` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def go(index: int) -> Any:
        barrier.wait()
        return attempt(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))


def claim(ledger: Ledger, key: str, index: int) -> Lease | Held:
    return ledger.claim(key, job(f"evt_{index}"), f"msg_{index}", f"run_{index}", 1)


# --- one owner at a time ------------------------------------------------------------------


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_claims_give_exactly_one_owner_and_the_record_names_it(
    ledger, firestore, key, racers
):
    results = race(racers, lambda i: claim(ledger, key, i))
    owners = [i for i, r in enumerate(results) if isinstance(r, Lease)]
    assert len(owners) == 1
    [winner] = owners
    stored = record(firestore, key)
    assert (stored["run"], stored["message_id"], stored["state"]) == (
        f"run_{winner}",
        f"msg_{winner}",
        ACTIVE,
    )
    held = [r for r in results if isinstance(r, Held)]
    assert {(h.state, h.event_id) for h in held} == {(ACTIVE, f"evt_{winner}")}


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_takeovers_of_a_released_lease_give_exactly_one_owner(
    ledger, firestore, key, racers
):
    first = claim(ledger, key, 99)
    assert isinstance(first, Lease)
    first = ledger.record_plan(first, PLAN)
    ledger.release(first)
    results = race(racers, lambda i: claim(ledger, key, i))
    owners = [(i, r) for i, r in enumerate(results) if isinstance(r, Lease)]
    assert len(owners) == 1
    [(winner, lease)] = owners
    assert lease.entry.plan == PLAN  # the takeover carries the recorded plan
    assert lease.took_over_from == "evt_99"
    assert record(firestore, key)["run"] == f"run_{winner}"


def test_racing_takeovers_of_an_expired_lease_give_exactly_one_owner(short_ledger, firestore, key):
    assert isinstance(claim(short_ledger, key, 99), Lease)  # and then the run dies
    time.sleep(1.2)
    results = race(10, lambda i: claim(short_ledger, key, i))
    assert sum(isinstance(r, Lease) for r in results) == 1


def test_a_live_lease_is_never_taken_over(ledger, key):
    assert isinstance(claim(ledger, key, 1), Lease)
    other = claim(ledger, key, 2)
    assert isinstance(other, Held)
    assert (other.state, other.event_id, other.message_id) == (ACTIVE, "evt_1", "msg_1")


def test_the_owners_own_redelivery_is_told_its_earlier_run_holds_the_lease(ledger, key):
    # Same message id, new run: it cannot know whether the earlier run is still going.
    first = ledger.claim(key, job(), "msg_1", "run_1", 1)
    again = ledger.claim(key, job(), "msg_1", "run_2", 1)
    assert isinstance(first, Lease)
    assert isinstance(again, Held)
    assert again.message_id == "msg_1"


def test_the_owners_redelivery_renews_a_released_lease_and_resumes_the_plan(ledger, key):
    first = ledger.claim(key, job(), "msg_1", "run_1", 1)
    assert isinstance(first, Lease)
    first = ledger.record_text(ledger.record_plan(first, PLAN), "chat_1")
    ledger.release(first)
    again = ledger.claim(key, job(), "msg_1", "run_2", 1)
    assert isinstance(again, Lease)
    assert (again.entry.plan, again.entry.chat_id) == (PLAN, "chat_1")


# --- a writer that lost ownership stops ---------------------------------------------------


def test_a_writer_whose_lease_was_taken_over_cannot_write_anything(short_ledger, firestore, key):
    stale = claim(short_ledger, key, 1)
    assert isinstance(stale, Lease)
    time.sleep(1.2)
    winner = claim(short_ledger, key, 2)
    assert isinstance(winner, Lease)
    for write in (
        lambda: short_ledger.record_plan(stale, PLAN),
        lambda: short_ledger.record_text(stale, "chat_x"),
        lambda: short_ledger.finish(stale, sent("chat_x")),
        lambda: short_ledger.release(stale),
    ):
        with pytest.raises(LeaseLostError):
            write()
    stored = record(firestore, key)
    assert (stored["run"], stored["state"], "plan" in stored, "chat_id" in stored) == (
        "run_2",
        ACTIVE,
        False,
        False,
    )


def test_a_release_after_the_outcome_cannot_reopen_the_entry(ledger, firestore, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    ledger.finish(lease, sent("chat_1"))
    with pytest.raises(LeaseLostError):
        ledger.release(lease)
    assert record(firestore, key)["state"] == DONE


def test_a_delivery_written_mid_run_is_no_takeover(ledger, firestore, key):
    # Linq's delivery report writes the entry while its owner is sending: the owner's next
    # writes still land, and the report's fields stay.
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_plan(lease, PLAN)
    assert ledger.record_delivery(key, "text", True, None, None)
    lease = ledger.record_text(lease, "chat_1", "msg_text")
    ledger.finish(lease, sent("chat_1"), "msg_link")
    stored = record(firestore, key)
    assert (stored["state"], stored["run"], stored["chat_id"]) == (DONE, "run_1", "chat_1")
    assert stored["text_delivery"]["status"] == "delivered"


class PausingSession(requests.Session):
    """Holds the first request `when` matches until the test lets it go: a forced interleaving."""

    def __init__(self, when: Callable[[str, str, Any], bool]) -> None:
        super().__init__()
        self.headers["Authorization"] = "Bearer owner"
        self._when = when
        self.reached, self.go = threading.Event(), threading.Event()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if not self.reached.is_set() and self._when(method, url, kwargs.get("json")):
            self.reached.set()
            assert self.go.wait(10)
        return super().request(method, url, **kwargs)


def conditional_update(method: str, url: str, body: Any) -> bool:
    writes = (body or {}).get("writes") or [{}]
    return url.endswith(":commit") and "updateTime" in writes[0].get("currentDocument", {})


@pytest.fixture
def paused(firestore, monkeypatch) -> Iterator[tuple[Ledger, PausingSession]]:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)
    session = PausingSession(conditional_update)
    yield Ledger(firestore.project, DATABASE, dt.timedelta(seconds=1), session), session
    session.go.set()


def test_takeover_read_then_overtaken_before_its_write_rereads_and_yields(
    paused, ledger, firestore, key
):
    # A reads a released entry and is held just before its conditional write; B takes the entry
    # over meanwhile; A's write then fails its precondition, A reads again and finds B.
    slow, session = paused
    first = claim(ledger, key, 0)
    assert isinstance(first, Lease)
    ledger.release(first)
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(claim, slow, key, 1)
        assert session.reached.wait(10)
        b = claim(ledger, key, 2)
        session.go.set()
        a_result = a.result(10)
    assert isinstance(b, Lease)
    assert isinstance(a_result, Held)
    assert a_result.event_id == "evt_2"
    assert record(firestore, key)["run"] == "run_2"


def test_plan_write_overtaken_by_a_takeover_loses_and_the_takeover_keeps_the_entry(
    paused, short_ledger, firestore, key
):
    slow, session = paused
    lease = claim(slow, key, 1)  # a create: not paused
    assert isinstance(lease, Lease)
    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(slow.record_plan, lease, PLAN)
        assert session.reached.wait(10)
        time.sleep(1.2)  # the short ledger's leases are a second: the paused one has run out
        taken = claim(short_ledger, key, 2)
        session.go.set()
        with pytest.raises(LeaseLostError):
            writing.result(10)
    assert isinstance(taken, Lease)
    assert "plan" not in record(firestore, key)


class ContendedSession(requests.Session):
    """Answers the first conditional update with Firestore's 409 ABORTED ("too much contention
    on these documents"), which commits nothing and asks for a retry."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["Authorization"] = "Bearer owner"
        self.aborted = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if not self.aborted and conditional_update(method, url, kwargs.get("json")):
            self.aborted += 1
            answer = requests.Response()
            answer.status_code = 409
            answer._content = b'{"error": {"code": 409, "status": "ABORTED"}}'
            return answer
        return super().request(method, url, **kwargs)


def test_contention_on_an_owners_write_is_retried_not_taken_for_a_takeover(
    firestore, monkeypatch, key
):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)
    session = ContendedSession()
    contended = Ledger(firestore.project, DATABASE, session=session)
    lease = claim(contended, key, 1)  # a create: not contended
    assert isinstance(lease, Lease)
    lease = contended.record_plan(lease, PLAN)
    assert session.aborted == 1
    contended.finish(lease, sent("chat_1"))
    stored = record(firestore, key)
    assert (stored["state"], stored["run"], stored["plan"]["line"]) == (DONE, "run_1", PLAN.line)


# --- outcomes ------------------------------------------------------------------------------


def test_a_done_entry_is_held_for_everyone_its_owner_included(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    ledger.finish(lease, skipped(Action.NO_PHONE, "no phone on file"))
    for index in (1, 2):
        held = claim(ledger, key, index)
        assert isinstance(held, Held)
        assert (held.state, held.action, held.event_id) == (DONE, "skipped:no_phone", "evt_1")


def test_a_failed_entry_is_taken_over_with_its_plan_and_chat(ledger, firestore, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_text(ledger.record_plan(lease, PLAN), "chat_1")
    ledger.finish(lease, failed("text sent, link refused: Linq 400"))
    assert record(firestore, key)["state"] == FAILED
    again = claim(ledger, key, 2)
    assert isinstance(again, Lease)
    assert (again.entry.plan, again.entry.chat_id, again.took_over_from) == (
        PLAN,
        "chat_1",
        "evt_1",
    )


def write_legacy(firestore, key: str, state: str) -> None:
    """An entry as the previous version wrote it: no lease, no run."""
    url = (
        f"{firestore.url}/v1/projects/{firestore.project}/databases/{DATABASE}/documents/"
        f"{ledger_module.COLLECTION}?documentId={key}"
    )
    fields = {"message_id": "old_msg", "event_id": "evt_old", "state": state}
    body = {"fields": {k: {"stringValue": v} for k, v in fields.items()}}
    answer = requests.post(url, json=body, headers={"Authorization": "Bearer owner"}, timeout=5)
    answer.raise_for_status()


def test_entries_of_the_previous_version_keep_their_meaning(ledger, firestore, key):
    write_legacy(firestore, key, "claimed")
    held = claim(ledger, key, 1)
    assert isinstance(held, Held)
    assert (held.state, held.event_id) == (DONE, "evt_old")
    retrying = key.replace("-1", "-2")
    write_legacy(firestore, retrying, "retrying")
    assert isinstance(claim(ledger, retrying, 1), Lease)
