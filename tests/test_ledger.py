"""The ledger's contract, run on both stores (the Firestore emulator, and the one in memory the
workflow's tests use), so that a difference between them fails a test: racing claims and
takeovers, stale writers, forced interleavings, the sweep's query, the lookups, the payment and
opt-out records, the Linq events, each line's count of the day, the TTL field, documents an
earlier version wrote. At most one run ever holds a failed payment, proven by the record. Leases
run out by moving the clock."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import requests

from shared.adapters import firestore as firestore_module
from shared.adapters.documents import Conflict, Documents
from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import (
    COLLECTION,
    CONTROL,
    DEFAULT_LEASE,
    LINQ_EVENTS,
    OPT_OUTS,
    EventClaim,
    Lease,
    Ledger,
)
from shared.adapters.memory import MemoryDocuments
from shared.core.control import SURGE_GUARD, Check, Control, Pause, SurgeRule
from shared.core.entry import (
    RETENTION,
    STALE_RELEASE,
    Entry,
    EntryKey,
    Part,
    PartReport,
    Payment,
    Plan,
    State,
)
from shared.core.errors import LeaseLostError, RetryableError
from shared.core.event import FailedPayment
from shared.core.outcome import Action, Outcome, failed, sent, skipped
from tests.clock import TestClock

DATABASE = "contract"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
PLAN = Plan("+14155550100", "Hi Jane. Reply STOP", "https://invoice.stripe.com/i/x", "+12025550100")
PAST_THE_LEASE = DEFAULT_LEASE + dt.timedelta(seconds=1)


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.integration)])
def documents(request: pytest.FixtureRequest) -> Documents:
    """Each test once on each store; the emulator's database starts empty."""
    if request.param == "memory":
        return MemoryDocuments()
    emulator = request.getfixturevalue("firestore")
    emulator.clear(emulator.project, DATABASE)
    return FirestoreDocuments(emulator.project, DATABASE, emulator_host=emulator.host)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(NOW)


@pytest.fixture
def ledger(documents: Documents, clock: TestClock) -> Ledger:
    return Ledger(documents, clock=clock)


@pytest.fixture
def key() -> EntryKey:
    return EntryKey(f"in_{uuid.uuid4().hex[:12]}", 1)


def job(
    event: str = "evt_a", invoice_id: str = "in_1", release: str | None = None
) -> FailedPayment:
    return FailedPayment(event, invoice_id, "cus_1", 1, False, release=release)


def race(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """`attempt(i)` in `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def go(index: int) -> Any:
        barrier.wait()
        return attempt(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))


def claim(ledger: Ledger, key: EntryKey, index: int, release: str | None = None) -> Lease | Entry:
    return ledger.claim(
        key, job(f"evt_{index}", key.invoice_id, release), f"msg_{index}", f"run_{index}"
    )


def stored(ledger: Ledger, key: EntryKey) -> Entry:
    found = ledger.entry(key)
    assert found is not None
    return found


# --- the store's own promises ------------------------------------------------------------------


def test_a_create_happens_once_and_an_update_only_on_the_version_read(documents):
    version = documents.write(COLLECTION, "doc-1", {"a": 1}, None)
    with pytest.raises(Conflict):
        documents.write(COLLECTION, "doc-1", {"a": 2}, None)
    newer = documents.write(COLLECTION, "doc-1", {"b": {"c": NOW}}, version)
    with pytest.raises(Conflict):
        documents.write(COLLECTION, "doc-1", {"a": 3}, version)
    with pytest.raises(Conflict):
        documents.write(COLLECTION, "doc-2", {"a": 3}, newer)
    found = documents.read(COLLECTION, "doc-1")
    assert (found.version, found.fields) == (newer, {"a": 1, "b": {"c": NOW}})
    assert documents.read(COLLECTION, "doc-2") is None


def test_a_read_gives_back_every_kind_of_value_written(documents):
    values = {"s": "x", "i": 7, "f": 1.5, "b": True, "t": NOW, "n": None, "m": {"k": "v"}}
    documents.write(COLLECTION, "doc-1", values, None)
    assert documents.read(COLLECTION, "doc-1").fields == values


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_creates_make_one_document(documents, racers):
    def create(index: int) -> bool:
        try:
            documents.write(COLLECTION, "doc-1", {"by": index}, None)
        except Conflict:
            return False
        return True

    assert sum(race(racers, create)) == 1


def test_an_increment_counts_from_nothing_and_keeps_the_other_fields(documents):
    assert documents.increment(COLLECTION, "doc-1", "n", 1, {"day": "d1"}) == 1
    version = documents.read(COLLECTION, "doc-1").version
    documents.write(COLLECTION, "doc-1", {"note": "kept"}, version)
    assert documents.increment(COLLECTION, "doc-1", "n", 2, {"day": "d1", "at": NOW}) == 3
    found = documents.read(COLLECTION, "doc-1")
    assert found.fields == {"n": 3, "day": "d1", "at": NOW, "note": "kept"}
    # A field that is no number is counted from 0, as Firestore's increment transform does.
    documents.write(COLLECTION, "doc-2", {"n": "seven"}, None)
    assert documents.increment(COLLECTION, "doc-2", "n", 1, {}) == 1


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_increments_lose_none_and_each_sees_its_own_count(documents, racers):
    seen = race(racers, lambda _: documents.increment(COLLECTION, "doc-1", "n", 1, {}))
    assert sorted(seen) == list(range(1, racers + 1))
    assert documents.read(COLLECTION, "doc-1").fields["n"] == racers


# --- one owner at a time ------------------------------------------------------------------


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_claims_give_exactly_one_owner_and_the_record_names_it(ledger, key, racers):
    results = race(racers, lambda i: claim(ledger, key, i))
    owners = [i for i, r in enumerate(results) if isinstance(r, Lease)]
    assert len(owners) == 1
    [winner] = owners
    entry = stored(ledger, key)
    assert (entry.run, entry.pubsub_message_id, entry.state) == (
        f"run_{winner}",
        f"msg_{winner}",
        State.ACTIVE,
    )
    held = [r for r in results if isinstance(r, Entry)]
    assert {(h.state, h.event_id) for h in held} == {(State.ACTIVE, f"evt_{winner}")}


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_takeovers_of_an_ended_lease_give_exactly_one_owner(ledger, key, racers):
    first = claim(ledger, key, 99)
    assert isinstance(first, Lease)
    first = ledger.record_plan(first, PLAN)
    ledger.end_lease(first)
    results = race(racers, lambda i: claim(ledger, key, i))
    owners = [(i, r) for i, r in enumerate(results) if isinstance(r, Lease)]
    assert len(owners) == 1
    [(winner, lease)] = owners
    assert lease.entry.plan == PLAN  # the takeover carries the recorded plan
    assert lease.took_over_from == "evt_99"
    assert stored(ledger, key).run == f"run_{winner}"


def test_racing_takeovers_of_an_expired_lease_give_exactly_one_owner(ledger, clock, key):
    assert isinstance(claim(ledger, key, 99), Lease)  # and then the run dies
    clock.advance(PAST_THE_LEASE)
    results = race(10, lambda i: claim(ledger, key, i))
    assert sum(isinstance(r, Lease) for r in results) == 1


def test_a_live_lease_is_never_taken_over(ledger, clock, key):
    assert isinstance(claim(ledger, key, 1), Lease)
    clock.advance(DEFAULT_LEASE - dt.timedelta(seconds=1))  # a second before it runs out
    other = claim(ledger, key, 2)
    assert isinstance(other, Entry)
    assert (other.state, other.event_id, other.pubsub_message_id) == (
        State.ACTIVE,
        "evt_1",
        "msg_1",
    )


def test_the_owners_own_redelivery_is_told_its_earlier_run_holds_the_lease(ledger, key):
    # Same message id, new run: it cannot know whether the earlier run is still going.
    first = ledger.claim(key, job(invoice_id=key.invoice_id), "msg_1", "run_1")
    again = ledger.claim(key, job(invoice_id=key.invoice_id), "msg_1", "run_2")
    assert isinstance(first, Lease)
    assert isinstance(again, Entry)
    assert again.pubsub_message_id == "msg_1"


def test_the_owners_redelivery_renews_an_ended_lease_and_resumes_the_plan(ledger, key):
    first = ledger.claim(key, job(invoice_id=key.invoice_id), "msg_1", "run_1")
    assert isinstance(first, Lease)
    first = ledger.record_text(ledger.record_plan(first, PLAN), "chat_1")
    ledger.end_lease(first)
    again = ledger.claim(key, job(invoice_id=key.invoice_id), "msg_1", "run_2")
    assert isinstance(again, Lease)
    assert (again.entry.plan, again.entry.chat_id) == (PLAN, "chat_1")


def test_a_claim_records_the_payment_and_the_ttl(ledger, key):
    payment = FailedPayment("evt_1", key.invoice_id, "cus_1", 1, True, account="acct_1")
    lease = ledger.claim(key, payment, "msg_1", "run_1")
    assert isinstance(lease, Lease)
    assert stored(ledger, key) == lease.entry
    assert (lease.entry.customer_id, lease.entry.account, lease.entry.livemode) == (
        "cus_1",
        "acct_1",
        True,
    )
    assert (lease.entry.created_at, lease.entry.lease_until, lease.entry.expire_at) == (
        NOW,
        NOW + DEFAULT_LEASE,
        NOW + RETENTION,
    )


# --- a writer that lost ownership stops ---------------------------------------------------


def test_a_writer_whose_lease_was_taken_over_cannot_write_anything(ledger, clock, key):
    stale = claim(ledger, key, 1)
    assert isinstance(stale, Lease)
    clock.advance(PAST_THE_LEASE)
    winner = claim(ledger, key, 2)
    assert isinstance(winner, Lease)
    for write in (
        lambda: ledger.record_plan(stale, PLAN),
        lambda: ledger.record_text(stale, "chat_x"),
        lambda: ledger.finish(stale, sent("chat_x")),
        lambda: ledger.defer(stale, Outcome(Action.DEFERRED), NOW, ()),
        lambda: ledger.end_lease(stale),
    ):
        with pytest.raises(LeaseLostError):
            write()
    entry = stored(ledger, key)
    assert (entry.run, entry.state, entry.plan, entry.chat_id) == (
        "run_2",
        State.ACTIVE,
        None,
        None,
    )


def test_ending_the_lease_after_the_outcome_cannot_reopen_the_entry(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    ledger.finish(lease, sent("chat_1"))
    with pytest.raises(LeaseLostError):
        ledger.end_lease(lease)
    assert stored(ledger, key).state is State.DONE


def test_a_delivery_written_mid_run_is_no_takeover(ledger, key):
    # Linq's delivery report writes the entry while its owner is sending: the owner's next
    # writes still land, and the report's fields stay.
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_plan(lease, PLAN)
    assert ledger.record_report(key, Part.TEXT, PartReport(True, NOW))
    lease = ledger.record_text(lease, "chat_1", "msg_text")
    ledger.finish(lease, sent("chat_1"), "msg_link")
    entry = stored(ledger, key)
    assert (entry.state, entry.run, entry.chat_id, entry.link_message_id) == (
        State.DONE,
        "run_1",
        "chat_1",
        "msg_link",
    )
    assert entry.text_report == PartReport(True, NOW)


class Pausing:
    """A store that holds the first conditional update (a write on a version read) until the
    test lets it go: a forced interleaving."""

    def __init__(self, inner: Documents) -> None:
        self._inner = inner
        self.reached, self.go = threading.Event(), threading.Event()

    def write(self, collection: str, document_id: str, values: Any, version: str | None) -> str:
        if version is not None and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(10)
        return self._inner.write(collection, document_id, values, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def paused(documents, clock) -> Iterator[tuple[Ledger, Pausing]]:
    store = Pausing(documents)
    yield Ledger(store, clock=clock), store  # type: ignore[arg-type]
    store.go.set()


def test_takeover_read_then_overtaken_before_its_write_rereads_and_yields(paused, ledger, key):
    # A reads an entry whose lease ended and is held just before its conditional write; B takes
    # the entry over meanwhile; A's write then fails its precondition, A reads again, finds B.
    slow, store = paused
    first = claim(ledger, key, 0)
    assert isinstance(first, Lease)
    ledger.end_lease(first)
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(claim, slow, key, 1)
        assert store.reached.wait(10)
        b = claim(ledger, key, 2)
        store.go.set()
        a_result = a.result(10)
    assert isinstance(b, Lease)
    assert isinstance(a_result, Entry)
    assert a_result.event_id == "evt_2"
    assert stored(ledger, key).run == "run_2"


def test_plan_write_overtaken_by_a_takeover_loses_and_the_takeover_keeps_the_entry(
    paused, ledger, clock, key
):
    slow, store = paused
    lease = claim(slow, key, 1)  # a create: not paused
    assert isinstance(lease, Lease)
    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(slow.record_plan, lease, PLAN)
        assert store.reached.wait(10)
        clock.advance(PAST_THE_LEASE)  # the paused run's lease has run out
        taken = claim(ledger, key, 2)
        store.go.set()
        with pytest.raises(LeaseLostError):
            writing.result(10)
    assert isinstance(taken, Lease)
    assert stored(ledger, key).plan is None


class Contended:
    """A store that refuses the first conditional update as Firestore does under contention
    (409 ABORTED): nothing is written, and the writer is asked to try again."""

    def __init__(self, inner: Documents) -> None:
        self._inner = inner
        self.aborted = 0

    def write(self, collection: str, document_id: str, values: Any, version: str | None) -> str:
        if version is not None and not self.aborted:
            self.aborted += 1
            raise Conflict("ABORTED")
        return self._inner.write(collection, document_id, values, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_contention_on_an_owners_write_is_retried_not_taken_for_a_takeover(
    documents, clock, ledger, key
):
    store = Contended(documents)
    contended = Ledger(store, clock=clock)  # type: ignore[arg-type]
    lease = claim(contended, key, 1)  # a create: not contended
    assert isinstance(lease, Lease)
    lease = contended.record_plan(lease, PLAN)
    assert store.aborted == 1
    contended.finish(lease, sent("chat_1"))
    entry = stored(ledger, key)
    assert (entry.state, entry.run, entry.plan) == (State.DONE, "run_1", PLAN)


class AlwaysContended(Contended):
    def write(self, collection: str, document_id: str, values: Any, version: str | None) -> str:
        if version is not None:
            raise Conflict("ABORTED")
        return super().write(collection, document_id, values, version)


def test_a_write_that_keeps_meeting_contention_is_retried_later(documents, clock, key):
    contended = Ledger(AlwaysContended(documents), clock=clock)  # type: ignore[arg-type]
    lease = claim(contended, key, 1)
    assert isinstance(lease, Lease)
    with pytest.raises(RetryableError, match=f"ledger entry {key} keeps changing"):
        contended.record_plan(lease, PLAN)


# --- outcomes ------------------------------------------------------------------------------


def test_a_done_entry_is_held_for_everyone_its_owner_included(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    ledger.finish(lease, skipped(Action.NO_PHONE, "no phone on file"))
    for index in (1, 2):
        held = claim(ledger, key, index)
        assert isinstance(held, Entry)
        assert (held.state, held.action, held.event_id) == (State.DONE, Action.NO_PHONE, "evt_1")


def test_a_failed_entry_is_taken_over_with_its_plan_and_chat(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_text(ledger.record_plan(lease, PLAN), "chat_1")
    ledger.finish(lease, failed("text sent, link refused: Linq 400"))
    assert stored(ledger, key).state is State.FAILED
    again = claim(ledger, key, 2)
    assert isinstance(again, Lease)
    assert (again.entry.plan, again.entry.chat_id, again.took_over_from) == (
        PLAN,
        "chat_1",
        "evt_1",
    )


def test_the_group_drawn_is_written_once_by_the_next_write(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_plan(lease.draw("treated"), PLAN)
    assert (lease.assigned, stored(ledger, key).group) == ("treated", "treated")
    ledger.finish(lease.draw("holdout"), sent("chat_1"))
    assert stored(ledger, key).group == "treated"


def test_the_decline_code_read_is_written_by_the_next_write_and_the_latest_read_counts(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_plan(lease.read_decline("insufficient_funds"), PLAN)
    assert (lease.declined, stored(ledger, key).decline_code) == (None, "insufficient_funds")
    # A run that read no code (the payment has no error) leaves the one read before.
    lease = ledger.record_text(lease.read_decline(None), "chat_1")
    assert stored(ledger, key).decline_code == "insufficient_funds"
    ledger.finish(lease.read_decline("expired_card"), sent("chat_1"))
    assert stored(ledger, key).decline_code == "expired_card"


# --- documents an earlier version wrote -------------------------------------------------------


def write_old(documents: Documents, key: EntryKey, **fields: Any) -> None:
    documents.put(COLLECTION, [(str(key), fields)])


def test_entries_of_the_previous_version_keep_their_meaning(ledger, documents, key):
    # No lease, no run: `claimed` was done, `retrying` an expired lease.
    write_old(documents, key, message_id="old_msg", event_id="evt_old", state="claimed")
    held = claim(ledger, key, 1)
    assert isinstance(held, Entry)
    assert (held.state, held.event_id, held.pubsub_message_id) == (State.DONE, "evt_old", "old_msg")
    retrying = replace(key, attempt=2)
    write_old(documents, retrying, message_id="old_msg", event_id="evt_old", state="retrying")
    assert isinstance(claim(ledger, retrying, 1), Lease)
    assert stored(ledger, retrying).pubsub_message_id == "msg_1"


def test_an_entry_named_its_pubsub_message_message_id_before(ledger, documents, key):
    write_old(documents, key, message_id="m-old", event_id="evt_1", state="done", action="sent")
    # Its own redelivery restates it: the message is recognised under the old field name.
    held = ledger.claim(key, job("evt_1", key.invoice_id), "m-old", "run_2")
    assert isinstance(held, Entry)
    assert (held.pubsub_message_id, held.action) == ("m-old", Action.SENT)


def test_an_outcome_or_a_state_a_later_version_wrote_still_reads(ledger, documents, key):
    write_old(documents, key, state="someday", action="skipped:someday", event_id="evt_1")
    entry = stored(ledger, key)
    assert (entry.state, entry.action, entry.ended) == (State.FAILED, None, None)
    # It may be taken over, and what this version cannot read is left as it was written.
    assert isinstance(claim(ledger, key, 2), Lease)
    assert documents.read(COLLECTION, str(key)).fields["action"] == "skipped:someday"


# --- the release sweep ---------------------------------------------------------------------


def deferred(ledger: Ledger, key: EntryKey, due_at: dt.datetime, index: int = 1) -> None:
    lease = claim(ledger, key, index)
    assert isinstance(lease, Lease)
    ledger.defer(lease, Outcome(Action.DEFERRED, "night"), due_at, ("America/Chicago",))


def test_the_sweep_finds_what_is_due_the_longest_waiting_first_and_no_more(ledger, clock):
    keys = [EntryKey(f"in_due{index}", 1) for index in range(4)]
    for index, key in enumerate(keys):
        deferred(ledger, key, NOW + dt.timedelta(minutes=index), index)
    late = EntryKey("in_notdue", 1)
    deferred(ledger, late, NOW + dt.timedelta(hours=9))
    done = claim(ledger, EntryKey("in_done", 1), 9)
    assert isinstance(done, Lease)
    ledger.finish(done, sent("chat_1"))
    clock.advance(dt.timedelta(minutes=2))
    due = ledger.due(clock(), 2)
    assert [d.entry.key for d in due] == keys[:2]
    assert [d.entry.key for d in ledger.due(clock(), 10)] == keys[:3]
    assert all(d.entry.zones == ("America/Chicago",) for d in due)


def test_two_sweeps_release_an_entry_once_and_a_stale_release_again(ledger, clock, key):
    deferred(ledger, key, NOW)
    [first] = ledger.due(NOW, 10)
    [second] = ledger.due(NOW, 10)
    assert ledger.release(first, "token_a")
    assert not ledger.release(second, "token_b")
    entry = stored(ledger, key)
    assert (entry.state, entry.release, entry.released_at) == (State.RELEASED, "token_a", NOW)
    assert ledger.due(NOW, 10) == []
    clock.advance(STALE_RELEASE)
    [stale] = ledger.due(clock(), 10)
    assert stale.entry.state is State.RELEASED
    assert ledger.release(stale, "token_c")
    # Only the message carrying the latest token takes the entry over.
    assert isinstance(claim(ledger, key, 2, release="token_a"), Entry)
    assert isinstance(claim(ledger, key, 3), Entry)
    taken = claim(ledger, key, 4, release="token_c")
    assert isinstance(taken, Lease)
    assert not ledger.release(stale, "token_d")


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_sweeps_release_an_entry_once(ledger, key, racers):
    deferred(ledger, key, NOW)
    [due] = ledger.due(NOW, 10)
    assert sum(race(racers, lambda i: ledger.release(due, f"token_{i}"))) == 1


# --- lookups ---------------------------------------------------------------------------------


def test_the_lookups_by_invoice_chat_recipient_and_message(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    lease = ledger.record_text(ledger.record_plan(lease, PLAN), "chat_1", "msg_text")
    ledger.finish(lease, sent("chat_1"), "msg_link")
    other = claim(ledger, replace(key, attempt=2), 2)
    assert isinstance(other, Lease)
    unrelated = claim(ledger, EntryKey("in_other", 1), 3)
    assert isinstance(unrelated, Lease)
    assert ledger.record_payment(Payment(key.invoice_id, NOW, 100, "usd")) is None
    assert [e.key for e in ledger.entries(key.invoice_id)] == [key, replace(key, attempt=2)]
    assert [e.key for e in ledger.entries_of_chat("chat_1")] == [key]
    assert [e.key for e in ledger.entries_to(PLAN.to)] == [key]
    found = ledger.sent_message("msg_text")
    assert (found[0].key, found[1]) == (key, Part.TEXT)
    found = ledger.sent_message("msg_link")
    assert (found[0].key, found[1]) == (key, Part.LINK)
    assert ledger.sent_message("msg_other") is None
    assert ledger.entries_of_chat("chat_2") == []


def test_linq_s_word_on_a_part_is_recorded_and_a_delivery_is_final(ledger, key):
    assert ledger.record_report(key, Part.TEXT, PartReport(True, NOW)) is None  # no entry yet
    assert isinstance(claim(ledger, key, 1), Lease)
    failure = PartReport(False, NOW, 4001, "Message not delivered")
    assert ledger.record_report(key, Part.LINK, failure)
    assert ledger.record_report(key, Part.LINK, PartReport(True, NOW))
    assert ledger.record_report(key, Part.LINK, failure) is False
    assert stored(ledger, key).link_report == PartReport(True, NOW)


# --- payments ------------------------------------------------------------------------------


def test_a_payment_is_recorded_once_with_its_ttl(ledger):
    first = Payment("in_1", NOW, 2500, "usd", "evt_p", "m-1", "treated", 1, 3.5, None)
    assert ledger.record_payment(first) is None
    second = replace(first, pubsub_message_id="m-2", group="holdout")
    recorded = ledger.record_payment(second)
    assert recorded == replace(first, recorded_at=NOW, expire_at=NOW + RETENTION)


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_deliveries_of_a_payment_record_it_once(ledger, racers):
    results = race(
        racers,
        lambda i: ledger.record_payment(
            Payment("in_1", NOW, 2500, "usd", pubsub_message_id=f"m{i}")
        ),
    )
    assert results.count(None) == 1
    [winner] = [f"m{i}" for i, r in enumerate(results) if r is None]
    assert {r.pubsub_message_id for r in results if r is not None} <= {winner}


def test_a_payment_an_earlier_version_recorded_still_reads(ledger, documents):
    documents.put(
        COLLECTION, [("in_1-paid", {"paid_at": NOW, "message_id": "m-old", "group": "treated"})]
    )
    found = ledger.record_payment(Payment("in_1", NOW, pubsub_message_id="m-new"))
    assert found is not None
    assert (found.pubsub_message_id, found.group) == ("m-old", "treated")


# --- the messages each line sent today ---------------------------------------------------------

LINE_A, LINE_B = "+12025550101", "+12025550102"


def test_each_line_counts_its_messages_for_its_utc_day_and_starts_again_at_midnight(ledger, clock):
    clock.set(dt.datetime(2026, 11, 26, 23, 59, 59, tzinfo=dt.UTC))
    assert ledger.sent_today() == {}
    assert [ledger.count_sent(LINE_A) for _ in range(3)] == [1, 2, 3]
    assert ledger.count_sent(LINE_B) == 1
    assert ledger.sent_today() == {LINE_A: 3, LINE_B: 1}
    clock.advance(dt.timedelta(seconds=1))  # 00:00 UTC: a new day for every line
    assert ledger.sent_today() == {}
    assert ledger.count_sent(LINE_B) == 1
    assert ledger.sent_today() == {LINE_B: 1}
    # The day is UTC's, whatever the clock's zone: 08:59 on the 27th in Tokyo is 23:59 on the
    # 26th in UTC.
    clock.set(dt.datetime(2026, 11, 27, 8, 59, tzinfo=dt.timezone(dt.timedelta(hours=9))))
    assert ledger.sent_today() == {LINE_A: 3, LINE_B: 1}


class ContendedCounts:
    """A store whose increments Firestore aborts for contention `times` times (nothing written)."""

    def __init__(self, inner: Documents, times: int) -> None:
        self._inner, self._times = inner, times

    def increment(self, *args: Any) -> int:
        if self._times:
            self._times -= 1
            raise Conflict("ABORTED")
        return self._inner.increment(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_count_aborted_for_contention_is_made_again_and_once(documents, clock):
    contended = Ledger(ContendedCounts(documents, 2), clock=clock)  # type: ignore[arg-type]
    assert contended.count_sent(LINE_A) == 1
    assert contended.sent_today() == {LINE_A: 1}


def test_a_count_that_keeps_meeting_contention_is_retried_later(documents, clock):
    contended = Ledger(ContendedCounts(documents, 99), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match=r"the count of line \+1\*+0101 keeps meeting"):
        contended.count_sent(LINE_A)
    assert contended.sent_today() == {}


def test_racing_counts_of_one_line_lose_none(ledger):
    seen = race(8, lambda _: [ledger.count_sent(LINE_A) for _ in range(5)])
    assert sorted(count for counts in seen for count in counts) == list(range(1, 41))
    assert ledger.sent_today() == {LINE_A: 40}


# --- the report's pages, and a ledger written at once -----------------------------------------


def test_the_pages_come_by_name_with_only_what_the_report_reads(ledger):
    entries = [
        Entry(
            EntryKey("in_A", 2),
            State.DONE,
            plan=PLAN,
            action=Action.SENT,
            texted_at=NOW,
            decline_code="insufficient_funds",
        ),
        Entry(EntryKey("in_A", 1), State.DONE, action=Action.NO_PHONE, created_at=NOW),
        Entry(EntryKey("in_B", 1), State.DEFERRED, due_at=NOW, group="treated", run="r"),
    ]
    paid = Payment("in_A", NOW, 2500, "usd", "evt_p", "m-1", "treated")
    assert ledger.write_all([*entries, paid]) == 4
    assert ledger.count() == 4
    pages = list(ledger.pages(size=2))
    assert [len(page) for page in pages] == [2, 2, 0]
    records = [record for page in pages for record in page]
    assert records == [
        entries[1],
        replace(entries[0], plan=Plan("", "", "", PLAN.line)),
        Payment("in_A", NOW, 2500, "usd", group="treated"),
        replace(entries[2], run=None),
    ]


def test_writing_only_some_attributes_changes_only_those(ledger, key):
    assert isinstance(claim(ledger, key, 1), Lease)
    before = stored(ledger, key)
    ledger.write_all([Entry(key, due_at=NOW)], only=["due_at"])
    assert stored(ledger, key) == replace(before, due_at=NOW)


# --- our own opt-out list --------------------------------------------------------------------


def test_an_opt_out_list_key_is_safe_for_any_handle(ledger):
    at = dt.datetime(2026, 11, 26, 14, 59, tzinfo=dt.UTC)
    handles = [
        "jane/doe%2F@icloud.com",
        "jane%2Fdoe%2F@icloud.com",
        "jane@icloud.com",
        "../..@icloud.com",
        "__name__@icloud.com",
        f"+999{uuid.uuid4().int % 10**8:08d}",
    ]
    for seconds, handle in enumerate(handles):
        assert ledger.set_opt_out(handle, True, at + dt.timedelta(seconds=seconds), {})
    for seconds, handle in enumerate(handles):
        assert ledger.opted_out_at(handle) == at + dt.timedelta(seconds=seconds)
    # An Apple ID is one whatever its case; a handle that was never written reads as not listed.
    assert ledger.opted_out_at("Jane/Doe%2F@iCloud.com") == at
    assert ledger.opted_out_at("jane/doe@icloud.com") is None


def test_an_opt_out_written_before_handles_were_hashed_still_reads(ledger, documents):
    # An E.164 number is its own document id, as every entry written so far is.
    at = dt.datetime(2026, 11, 26, 14, 59, tzinfo=dt.UTC)
    phone = f"+999{uuid.uuid4().int % 10**8:08d}"
    documents.put(OPT_OUTS, [(phone, {"opted_out": True, "changed_at": at})])
    assert ledger.opted_out_at(phone) == at
    assert not ledger.set_opt_out(phone, False, at - dt.timedelta(seconds=1), {})
    assert ledger.set_opt_out(phone, False, at + dt.timedelta(seconds=1), {})
    assert ledger.opted_out_at(phone) is None


def test_the_later_word_wins_and_a_stop_heard_again_says_so_again(ledger):
    at = dt.datetime(2026, 11, 26, 14, 59, tzinfo=dt.UTC)
    assert ledger.set_opt_out("+14155550100", True, at, {"chat_id": "chat_1"})
    # The run that wrote the STOP may have died before its note: hearing it again says changed.
    assert ledger.set_opt_out("+14155550100", True, at, {"chat_id": "chat_1"})
    assert not ledger.set_opt_out("+14155550100", False, at - dt.timedelta(seconds=1), {})
    assert ledger.opted_out_at("+14155550100") == at


# --- the Linq events acted on ------------------------------------------------------------------


def test_one_run_at_a_time_owns_a_linq_event_and_a_finished_one_is_a_duplicate(ledger):
    webhook_id = f"msg_{uuid.uuid4().hex}"
    first = ledger.claim_event(webhook_id, "run_a")
    assert first is not None
    with pytest.raises(RetryableError, match="another run is handling"):
        ledger.claim_event(webhook_id, "run_b")
    ledger.end_event_lease(first)  # run_a failed: its redelivery goes on at once
    second = ledger.claim_event(webhook_id, "run_b")
    assert second is not None
    ledger.finish_event(first)  # a late word from run_a changes nothing: the event is run_b's
    with pytest.raises(RetryableError, match="another run is handling"):
        ledger.claim_event(webhook_id, "run_c")
    ledger.finish_event(second)
    assert ledger.claim_event(webhook_id, "run_c") is None


def test_a_dead_runs_lease_on_a_linq_event_is_taken_over_once_it_runs_out(ledger, clock):
    webhook_id = f"msg_{uuid.uuid4().hex}"
    dead = ledger.claim_event(webhook_id, "run_a")
    assert dead is not None
    clock.advance(DEFAULT_LEASE - dt.timedelta(seconds=1))
    with pytest.raises(RetryableError, match="another run is handling"):
        ledger.claim_event(webhook_id, "run_b")
    clock.advance(dt.timedelta(seconds=1))
    taken = ledger.claim_event(webhook_id, "run_b")
    assert taken is not None
    ledger.finish_event(dead)  # the dead run's finish, should it ever come, changes nothing
    with pytest.raises(RetryableError, match="another run is handling"):
        ledger.claim_event(webhook_id, "run_c")


def test_a_linq_event_claimed_before_leases_reads_as_run_out(ledger, documents):
    assert ledger.claim_event("msg_old", "run_a") is not None
    [claimed] = documents.find(LINQ_EVENTS, "webhook_id", "msg_old")
    documents.put(LINQ_EVENTS, [(claimed.id, {"webhook_id": "msg_old", "claimed_at": NOW})])
    assert ledger.claim_event("msg_old", "run_b") is not None


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_deliveries_of_one_linq_event_have_one_owner(ledger, racers):
    webhook_id = f"msg_{uuid.uuid4().hex}"

    def deliver(index: int) -> Any:
        try:
            return ledger.claim_event(webhook_id, f"run_{index}")
        except RetryableError as exc:
            return exc

    outcomes = race(racers, deliver)
    claims = [o for o in outcomes if isinstance(o, EventClaim)]
    assert len(claims) == 1
    assert all(isinstance(o, RetryableError) for o in outcomes if o not in claims)


def test_every_record_carries_its_ttl(ledger, documents, key):
    assert isinstance(claim(ledger, key, 1), Lease)
    assert ledger.record_payment(Payment(key.invoice_id, NOW)) is None
    claimed = ledger.claim_event("msg_ttl", "run_a")
    assert claimed is not None
    ttl = NOW + RETENTION
    assert documents.read(COLLECTION, str(key)).fields["expire_at"] == ttl
    assert documents.read(COLLECTION, f"{key.invoice_id}-paid").fields["expire_at"] == ttl
    [event] = [d for page in documents.pages(LINQ_EVENTS, ["expire_at"], 10) for d in page]
    assert event.fields == {"expire_at": ttl}


# --- whether texting is on, and the surge guard's count -----------------------------------------

RULE = SurgeRule(minimum=3, window=dt.timedelta(minutes=10), share=50)


def test_a_pause_and_a_resume_are_one_document_read_back_whole(ledger, documents, clock):
    assert ledger.control() == Control()
    paused, changed = ledger.pause_texting("processor incident", "ops@acme.test")
    assert changed
    assert paused == Control(pause=Pause("processor incident", "ops@acme.test", NOW))
    assert ledger.control() == paused
    again, changed = ledger.pause_texting("another", "someone")
    assert (again, changed) == (paused, False)
    clock.advance(dt.timedelta(minutes=5))
    resumed, changed = ledger.resume_texting("lead@acme.test")
    assert changed
    assert (
        ledger.control()
        == resumed
        == Control(resumed_by="lead@acme.test", resumed_at=NOW + dt.timedelta(minutes=5))
    )
    assert ledger.resume_texting("lead@acme.test") == (resumed, False)
    # One document: nothing of the pause is left in it.
    [document] = [d for page in documents.pages(CONTROL, ["paused", "reason"], 10) for d in page]
    assert document.fields == {"paused": False, "reason": None}


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_instances_begin_one_check_a_minute(ledger, clock, racers):
    began = race(racers, lambda _: ledger.begin_check(5, RULE)[1])
    assert sum(began) == 1
    control = ledger.control()
    assert control.check == Check(NOW, 5)
    ended, changed = ledger.end_check(NOW, 1, True, RULE)
    assert changed
    assert ended.pause == Pause("surge: 5 of 6 payments failed in 10 minutes", SURGE_GUARD, NOW)
    assert ledger.control() == ended
    assert ledger.end_check(NOW, 1, True, RULE) == (ended, False)


def test_a_check_ended_after_a_resume_records_nothing(ledger, clock):
    ledger.begin_check(5, RULE)
    ledger.pause_texting("by hand", "ops")
    ledger.resume_texting("ops")
    control, changed = ledger.end_check(NOW, 0, True, RULE)
    assert not changed
    assert control.pause is None
    assert control.check is None


def reported(ledger: Ledger, invoice_id: str, failed_at: dt.datetime | None, account=None):
    payment = FailedPayment(
        f"evt_{invoice_id}",
        invoice_id,
        "cus_1",
        1,
        False,
        account,
        failed_at=int(failed_at.timestamp()) if failed_at is not None else None,
    )
    lease = ledger.claim(EntryKey(invoice_id, 1), payment, f"m_{invoice_id}", f"run_{invoice_id}")
    assert isinstance(lease, Lease)
    return lease


def test_the_failures_of_the_window_are_counted_by_when_stripe_reported_them(ledger):
    reported(ledger, "in_old", NOW - dt.timedelta(minutes=11))
    reported(ledger, "in_edge", NOW - dt.timedelta(minutes=10))
    reported(ledger, "in_new", NOW - dt.timedelta(minutes=1), "acct_1A")
    reported(ledger, "in_other", NOW, "acct_1B")
    reported(ledger, "in_backfilled", None)
    assert ledger.record_payment(Payment("in_new", NOW)) is None
    assert ledger.failures_since(NOW - dt.timedelta(minutes=10)) == 3
    assert ledger.failures_since(NOW + dt.timedelta(seconds=1)) == 0
    since = NOW - dt.timedelta(minutes=10)
    assert ledger.accounts_failed_since(since) == {None, "acct_1A", "acct_1B"}
    assert ledger.accounts_failed_since(NOW - dt.timedelta(minutes=1)) == {"acct_1A", "acct_1B"}


def paused_entry(ledger: Ledger, invoice_id: str) -> EntryKey:
    lease = reported(ledger, invoice_id, NOW)
    ledger.pause(lease, Outcome(Action.PAUSED, "texting paused"))
    return lease.key


def test_a_paused_entry_is_released_once_texting_is_on_the_oldest_first(ledger, clock):
    keys = []
    for index in range(3):
        keys.append(paused_entry(ledger, f"in_paused{index}"))
        clock.advance(dt.timedelta(minutes=1))
    deferred(ledger, EntryKey("in_night", 1), NOW + dt.timedelta(hours=9))
    assert ledger.paused_count() == 3
    entry = stored(ledger, keys[0])
    assert (entry.state, entry.action, entry.reason) == (
        State.PAUSED,
        Action.PAUSED,
        "texting paused",
    )
    # While texting is paused, the sweep finds none of them, and may release none.
    assert ledger.due(clock(), 10, texting_paused=True) == []
    found = ledger.due(clock(), 10)
    assert [d.entry.key for d in found] == keys
    assert [d.entry.key for d in ledger.due(clock(), 2)] == keys[:2]
    assert not ledger.release(found[0], "token_a", texting_paused=True)
    assert ledger.release(found[0], "token_a")
    assert not ledger.release(found[0], "token_b")
    assert ledger.paused_count() == 2
    assert isinstance(claim(ledger, keys[0], 7, release="token_a"), Lease)


def test_a_message_for_a_paused_payment_cannot_claim_it(ledger, key):
    lease = claim(ledger, key, 1)
    assert isinstance(lease, Lease)
    ledger.pause(lease, Outcome(Action.PAUSED, "texting paused"))
    held = claim(ledger, key, 2)
    assert isinstance(held, Entry)
    assert held.state is State.PAUSED
    with pytest.raises(LeaseLostError):
        ledger.finish(lease, sent("chat_1"))


# --- the Firestore adapter's error map ------------------------------------------------------------


def answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


@pytest.mark.parametrize(
    ("status", "body", "conflict"),
    [
        (409, b'{"error": {"status": "ALREADY_EXISTS"}}', True),
        (400, b'{"error": {"status": "FAILED_PRECONDITION"}}', True),
        (404, b'{"error": {"status": "NOT_FOUND"}}', True),
        # Contention: nothing was committed; try again.
        (409, b'{"error": {"code": 409, "status": "ABORTED"}}', True),
        (503, b'{"error": {"status": "UNAVAILABLE"}}', False),
        # Access problems are retried too: fixing IAM should not lose the payment.
        (403, b'{"error": {"status": "PERMISSION_DENIED"}}', False),
        (500, b"<html>gateway</html>", False),
        (502, b'["not", "an", "object"]', False),
    ],
)
def test_a_firestore_error_is_a_conflict_or_something_to_retry(status, body, conflict):
    error = firestore_module.error(answer(status, body))
    if conflict:
        assert isinstance(error, Conflict)
    else:
        assert isinstance(error, RetryableError)
        assert (error.detail["status"], error.detail["vendor"]) == (status, "firestore")
