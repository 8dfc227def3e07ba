"""The send ledger: one Firestore document per failed payment, owned by one run at a time.

The design is Stripe's for its own idempotency keys (brandur.org/idempotency-keys), on Firestore:

- **A lease.** A run owns `{invoice_id}-{attempt}` while `lease_until` is ahead; the lease is
  longer than the function's timeout, so a run that dies in any way (crash, timeout, OOM) leaves
  a lease that expires and a replay can take over. A run that raises for a retry releases its
  lease at once (sets it to now), so its redelivery, or any other message, can go on.
- **A version on every write.** Each write is conditional on the document's `updateTime` as this
  run last wrote or read it, so of two runs racing through a claim or a takeover exactly one wins,
  and a run that lost ownership fails its next write (`LeaseLostError`) and stops.
- **A recorded plan.** Before the first send the owner records what it will send (line, recipient,
  text, link); after the text it records the chat. Whoever owns the entry next resumes from there
  with the recorded plan, byte for byte, so its requests match Linq's idempotency keys.

States: `active` (owned while the lease runs), `done` (an outcome was logged; every later message
for it is a duplicate), `failed` (a permanent failure was logged; a later message may take over),
`deferred` (night at the recipient: held until `due_at`), `released` (the release sweep handed it
back with a token; only the message carrying that token may take it over).
Entries written by the previous version (`claimed`, `retrying`) read as `done` and as an expired
`active`.

An invoice's payment is one document beside its entries, `{invoice_id}-paid`, created once (an
`exists: false` precondition): of any number of deliveries of the payment, one records it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import requests

from shared.adapters.google import rest_session
from shared.core.decide import Entry, Plan
from shared.core.errors import LeaseLostError, RetryableError
from shared.core.event import FailedPayment
from shared.core.lease import DEFAULT_LEASE
from shared.core.linq_events import Listing, hear_word
from shared.core.outcome import Action, Outcome

COLLECTION = "dunning_sends"
# Our own STOP list, one document per handle (`_opt_out_key`): every line and every Linq account.
OPT_OUTS = "dunning_optouts"
# Linq webhook ids, each owned by one run at a time through a lease and marked done once acted on.
LINQ_EVENTS = "dunning_linq_events"
TIMEOUT = (3.05, 5.0)
# Kept past Stripe's longest retry window (Smart Retries: up to two months); a Firestore TTL
# policy on `expire_at` (set by deploy.sh) deletes records after that.
RETENTION = dt.timedelta(days=70)
ACTIVE, DONE, FAILED = "active", "done", "failed"
PAID = "paid"
DEFERRED, RELEASED = "deferred", "released"
_LEGACY_STATES = {"claimed": DONE, "retrying": ACTIVE}
_SCOPE = "https://www.googleapis.com/auth/datastore"
# Firestore's answers to a write whose precondition no longer holds.
_CONFLICTS = frozenset({"ALREADY_EXISTS", "FAILED_PRECONDITION", "NOT_FOUND", "ABORTED"})
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True)
class Lease:
    """This run owns `key` as of `version` (the document's updateTime after its last write)."""

    key: str
    version: str
    entry: Entry
    # The run token written with the lease: a takeover replaces it, nothing else does.
    run: str
    # The event of the run this lease took over from, when it was not a fresh claim.
    took_over_from: str | None = None
    # The entry's assignment at the holdout draw as recorded (an earlier run's), and this run's
    # own draw until a write records it: the first draw is the one that counts.
    group: str | None = None
    drawn: str | None = None

    def draw(self, group: str | None) -> Lease:
        """This run's decision drew `group` (None: it did not reach the draw): the owner's next
        write records it, unless the entry already has an assignment."""
        return self if group is None or self.group is not None else replace(self, drawn=group)

    @property
    def assigned(self) -> str | None:
        """The entry's assignment: recorded, or drawn by this run."""
        return self.group or self.drawn


@dataclass(frozen=True)
class EventClaim:
    """This run owns the handling of Linq event `webhook_id` as of `version`."""

    webhook_id: str
    version: str
    run: str


@dataclass(frozen=True)
class Held:
    """Another run owns this failed payment, or one has finished it."""

    key: str
    state: str
    event_id: str
    message_id: str
    action: str | None
    lease_until: dt.datetime | None
    reason: str | None = None
    chat_id: str | None = None
    due_at: dt.datetime | None = None
    group: str | None = None


@dataclass(frozen=True)
class Due:
    """A deferred entry the sweep may release: what it needs to queue the payment again."""

    key: str
    version: str
    job: FailedPayment
    # DEFERRED (due for the first time) or RELEASED (a stale release, released again).
    state: str


def paid_key(invoice_id: str) -> str:
    """The document of an invoice's payment: `-paid` sorts after every attempt's number, so a
    reader of the ledger by name meets it right after the invoice's entries."""
    return f"{invoice_id}-{PAID}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _opt_out_key(handle: str) -> str:
    """A handle's document id on our opt-out list. An E.164 number is its own id (as every
    entry written so far is); any other handle (an Apple ID email, which may hold `/` or `%`, or
    anything else Linq sends) is hashed, case folded as Apple IDs are, and kept as a field."""
    if _E164.fullmatch(handle):
        return handle
    return "h-" + hashlib.sha256(handle.strip().casefold().encode()).hexdigest()


def _event_key(webhook_id: str) -> str:
    """A Linq event's document id: the sender's webhook id may hold `/` or any printable ASCII,
    which a Firestore document id cannot, so the id is hashed (and kept as a field)."""
    return "wh-" + hashlib.sha256(webhook_id.encode()).hexdigest()


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _encode(value: Any) -> dict[str, Any]:
    """A Firestore REST value for a str, int, float, bool, datetime, mapping or None."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, dt.datetime):
        return {"timestampValue": _stamp(value)}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: _encode(v) for k, v in value.items()}}}
    return {"stringValue": str(value)}


def _decode(value: dict[str, Any]) -> Any:
    if "mapValue" in value:
        fields = value["mapValue"].get("fields") or {}
        return {k: _decode(v) for k, v in fields.items()}
    if "integerValue" in value:
        return int(value["integerValue"])
    if "timestampValue" in value:
        return dt.datetime.fromisoformat(value["timestampValue"].replace("Z", "+00:00"))
    for kind in ("stringValue", "booleanValue", "doubleValue"):
        if kind in value:
            return value[kind]
    return None


def _entry(fields: dict[str, Any]) -> Entry:
    plan = fields.get("plan")
    state = _LEGACY_STATES.get(fields.get("state", ""), fields.get("state"))
    return Entry(
        plan=Plan(**{k: str(plan[k]) for k in ("to", "text", "link", "line")})
        if isinstance(plan, dict)
        else None,
        chat_id=fields.get("chat_id") or None,
        ended=_action(fields.get("action")) if state == DONE else None,
    )


def _action(value: Any) -> Action | None:
    """A recorded action; None for one this version does not know (a later version wrote it)."""
    try:
        return Action(value)
    except ValueError:
        return None


def _error(response: requests.Response) -> RetryableError | LeaseLostError:
    """Our error for a Firestore error response: a lost precondition, or something to retry.

    Access problems are retried too: fixing IAM should not lose the payment.
    """
    try:
        status = (response.json().get("error") or {}).get("status")
    except (ValueError, AttributeError):
        status = None
    if status in _CONFLICTS:
        return LeaseLostError(f"ledger entry changed under this run ({status})", vendor="firestore")
    return RetryableError(
        f"Firestore {response.status_code}: {response.text[:200]}",
        vendor="firestore",
        status=response.status_code,
    )


class Ledger:
    """Firestore over REST: one keep-alive session, no gRPC stack to import at cold start."""

    def __init__(
        self,
        project: str,
        database: str,
        lease: dt.timedelta = DEFAULT_LEASE,
        session: requests.Session | None = None,
    ) -> None:
        own_session, base = rest_session(
            _SCOPE, "FIRESTORE_EMULATOR_HOST", "https://firestore.googleapis.com"
        )
        self._session = session or own_session
        self._lease = lease
        self._database = f"projects/{project}/databases/{database}"
        self._documents = f"{base}/v1/{self._database}/documents"

    # --- plumbing ---------------------------------------------------------------------------

    def _name(self, key: str, collection: str = COLLECTION) -> str:
        return f"{self._database}/documents/{collection}/{key}"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise RetryableError(
                f"Firestore unreachable: {type(exc).__name__}", vendor="firestore"
            ) from exc

    def _commit(
        self,
        key: str,
        values: dict[str, Any],
        precondition: dict[str, Any],
        collection: str = COLLECTION,
    ) -> str:
        """Write `values` into the document if `precondition` holds; returns the new version."""
        write = {
            "update": {
                "name": self._name(key, collection),
                "fields": {k: _encode(v) for k, v in values.items()},
            },
            "updateMask": {"fieldPaths": sorted(values)},
            "currentDocument": precondition,
        }
        answer = self._call("POST", f"{self._documents}:commit", json={"writes": [write]})
        if not answer.ok:
            raise _error(answer)
        return str(answer.json()["writeResults"][0]["updateTime"])

    def _update(self, lease: Lease, values: dict[str, Any]) -> Lease:
        """Write as the owner, with the group this run drew if the entry has none yet. The
        version moves under the owner without a takeover too: Linq's delivery report
        (`record_delivery`) lands on the entry while the run is still sending. Only a change of
        `run` (a takeover) or of `state` ends ownership; after any other change the write is made
        again on the version read."""
        if lease.drawn is not None:
            values = {**values, "group": lease.drawn}
        for _ in range(5):
            try:
                version = self._commit(lease.key, values, {"updateTime": lease.version})
            except LeaseLostError:
                fields, current = self._read(lease.key) or ({}, "")
                if fields.get("run") != lease.run or fields.get("state") != ACTIVE:
                    raise
                lease = replace(lease, version=current)
                continue
            return replace(lease, version=version, group=lease.assigned, drawn=None)
        raise RetryableError(f"ledger entry {lease.key} keeps changing; try again later")

    def _read(self, key: str, collection: str = COLLECTION) -> tuple[dict[str, Any], str] | None:
        answer = self._call("GET", f"{self._documents}/{collection}/{quote(key, safe='')}")
        if answer.status_code == 404:
            return None
        if not answer.ok:
            raise _error(answer)
        document = answer.json()
        fields = {k: _decode(v) for k, v in (document.get("fields") or {}).items()}
        return fields, str(document["updateTime"])

    def _owner(self, job: FailedPayment, message_id: str, run: str, now: dt.datetime) -> dict:
        return {
            "message_id": message_id,
            "event_id": job.event_id,
            "run": run,
            "state": ACTIVE,
            "lease_until": now + self._lease,
            "updated_at": now,
            "expire_at": now + RETENTION,
        }

    # --- ownership --------------------------------------------------------------------------

    def claim(
        self, key: str, job: FailedPayment, message_id: str, run: str, attempt: int
    ) -> Lease | Held:
        """Own `key` for this run (a Lease, carrying what earlier owners recorded), or learn who
        holds it (Held).

        Takes over an entry that failed or whose lease has run out; a concurrent claim or takeover
        by another run makes this one re-read and decide again.
        """
        for _ in range(5):
            now = _now()
            owner = self._owner(job, message_id, run, now)
            fresh = {
                **owner,
                "invoice_id": job.invoice_id,
                "attempt": attempt,
                "customer_id": job.customer_id,
                "account": job.account,
                "livemode": job.livemode,
                "created_at": now,
            }
            try:
                version = self._commit(key, fresh, {"exists": False})
                return Lease(key, version, Entry(), run)
            except LeaseLostError:
                pass  # it exists: see who holds it
            found = self._read(key)
            if found is None:
                continue  # expired and deleted between the two calls: claim again
            fields, version = found
            state = _LEGACY_STATES.get(fields.get("state", ""), fields.get("state"))
            lease_until = fields.get("lease_until")
            live = isinstance(lease_until, dt.datetime) and lease_until > now
            # A deferred payment waits for its release; a released one is taken over by the
            # message the sweep published for it, and by no other.
            held_for_release = state == DEFERRED or (
                state == RELEASED and (job.release is None or job.release != fields.get("release"))
            )
            if state == DONE or (state == ACTIVE and live) or held_for_release:
                return Held(
                    key,
                    str(state),
                    str(fields.get("event_id") or ""),
                    str(fields.get("message_id") or ""),
                    fields.get("action"),
                    lease_until if isinstance(lease_until, dt.datetime) else None,
                    fields.get("reason"),
                    fields.get("chat_id"),
                    fields.get("due_at"),
                    fields.get("group"),
                )
            try:
                version = self._commit(key, owner, {"updateTime": version})
            except LeaseLostError:
                continue  # another run took it first: look again
            return Lease(
                key,
                version,
                _entry(fields),
                run,
                str(fields.get("event_id") or ""),
                fields.get("group"),
            )
        raise RetryableError(f"ledger entry {key} keeps changing; try again later")

    def entry(self, key: str) -> Entry | None:
        """What the ledger holds for `key`, read without owning it; None when there is nothing."""
        found = self._read(key)
        return _entry(found[0]) if found is not None else None

    def record_plan(self, lease: Lease, plan: Plan, first_name: str | None = None) -> Lease:
        """Record what this failed payment will get, before the first send (and whom to name
        when the recipient answers)."""
        now = _now()
        values = {
            "plan": {"line": plan.line, "to": plan.to, "text": plan.text, "link": plan.link},
            "first_name": first_name,
            "lease_until": now + self._lease,
            "updated_at": now,
        }
        return replace(self._update(lease, values), entry=Entry(plan=plan))

    def record_text(self, lease: Lease, chat_id: str, message_id: str | None = None) -> Lease:
        """Record that the text went out into `chat_id` (as message `message_id`): a resumed run
        sends only the link."""
        now = _now()
        values = {
            "chat_id": chat_id,
            "text_message_id": message_id,
            "texted_at": now,
            "lease_until": now + self._lease,
            "updated_at": now,
        }
        return replace(self._update(lease, values), entry=replace(lease.entry, chat_id=chat_id))

    def finish(self, lease: Lease, outcome: Outcome, link_message_id: str | None = None) -> None:
        """Record the outcome: `done` for good, or `failed`, which a later message may take over
        (with the link's message id, when one went out)."""
        now = _now()
        values: dict[str, Any] = {
            "state": FAILED if outcome.action is Action.FAILED else DONE,
            "action": outcome.action.value,
            "reason": outcome.reason,
            "lease_until": now,
            "updated_at": now,
            "finished_at": now,
        }
        if outcome.chat_id is not None:
            values["chat_id"] = outcome.chat_id
        if link_message_id is not None:
            values["link_message_id"] = link_message_id
        self._update(lease, values)

    def defer(
        self, lease: Lease, outcome: Outcome, due_at: dt.datetime, zones: tuple[str, ...]
    ) -> None:
        """Hold the payment until `due_at`: the release sweep hands it back then."""
        now = _now()
        self._update(
            lease,
            {
                "state": DEFERRED,
                "action": outcome.action.value,
                "reason": outcome.reason,
                "due_at": due_at,
                "zones": ",".join(zones),
                "lease_until": now,
                "updated_at": now,
            },
        )

    # --- the release sweep ------------------------------------------------------------------

    def due(self, now: dt.datetime, limit: int, stale_before: dt.datetime) -> list[Due]:
        """Entries to release: deferred ones whose `due_at` has passed, and released ones whose
        release is older than `stale_before` and was never taken over (a sweep that died after
        marking them, a message lost): at most `limit` of each, the longest waiting first."""
        found = self._query(DEFERRED, "due_at", now, limit)
        found += self._query(RELEASED, "released_at", stale_before, limit)
        return [self._due(document) for document in found]

    def _find(self, field: str, value: Any) -> list[tuple[str, str, dict[str, Any]]]:
        """Every ledger entry whose `field` equals `value`: key, version and fields."""
        filters = {
            "fieldFilter": {"field": {"fieldPath": field}, "op": "EQUAL", "value": _encode(value)}
        }
        query = {"structuredQuery": {"from": [{"collectionId": COLLECTION}], "where": filters}}
        answer = self._call("POST", f"{self._documents}:runQuery", json=query)
        if not answer.ok:
            raise _error(answer)
        found = []
        for row in answer.json():
            if "document" in row:
                document = row["document"]
                fields = {k: _decode(v) for k, v in (document.get("fields") or {}).items()}
                found.append((document["name"].rsplit("/", 1)[1], document["updateTime"], fields))
        return found

    def _query(
        self, state: str, field: str, until: dt.datetime, limit: int
    ) -> list[dict[str, Any]]:
        def compare(path: str, op: str, value: Any) -> dict[str, Any]:
            return {
                "fieldFilter": {"field": {"fieldPath": path}, "op": op, "value": _encode(value)}
            }

        query = {
            "structuredQuery": {
                "from": [{"collectionId": COLLECTION}],
                "where": {
                    "compositeFilter": {
                        "op": "AND",
                        "filters": [
                            compare("state", "EQUAL", state),
                            compare(field, "LESS_THAN_OR_EQUAL", until),
                        ],
                    }
                },
                "orderBy": [{"field": {"fieldPath": field}, "direction": "ASCENDING"}],
                "limit": limit,
            }
        }
        answer = self._call("POST", f"{self._documents}:runQuery", json=query)
        if not answer.ok:
            raise _error(answer)
        return [row["document"] for row in answer.json() if "document" in row]

    @staticmethod
    def _due(document: dict[str, Any]) -> Due:
        fields = {k: _decode(v) for k, v in (document.get("fields") or {}).items()}
        job = FailedPayment(
            event_id=str(fields.get("event_id") or ""),
            invoice_id=str(fields.get("invoice_id") or ""),
            customer_id=fields.get("customer_id"),
            attempt_count=fields.get("attempt"),
            livemode=bool(fields.get("livemode")),
            account=fields.get("account"),
        )
        key = document["name"].rsplit("/", 1)[1]
        return Due(key, str(document["updateTime"]), job, str(fields.get("state")))

    def mark_released(self, due: Due, token: str) -> bool:
        """Mark `due` released with `token`, if no other sweep got there first (False then)."""
        now = _now()
        values = {"state": RELEASED, "release": token, "released_at": now, "updated_at": now}
        try:
            self._commit(due.key, values, {"updateTime": due.version})
        except LeaseLostError:
            return False
        return True

    # --- payments -----------------------------------------------------------------------------

    def entries(self, invoice_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """Every entry of one invoice (one per failed attempt): key, version and fields."""
        return self._find("invoice_id", invoice_id)

    def sent_message(self, message_id: str) -> tuple[str, str] | None:
        """The entry and the part (text or link) that went out as Linq message `message_id`."""
        for part in ("text", "link"):
            found = self._find(f"{part}_message_id", message_id)
            if found:
                return found[0][0], part
        return None

    def entries_of_chat(self, chat_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """The entries whose text opened (or went into) chat `chat_id`."""
        return self._find("chat_id", chat_id)

    def entries_to(self, phone: str) -> list[tuple[str, str, dict[str, Any]]]:
        """The entries whose recorded plan texts `phone`."""
        return self._find("plan.to", phone)

    def record_payment(self, invoice_id: str, payment: dict[str, Any]) -> dict[str, Any] | None:
        """Record the invoice's payment once: its payment document is created unless it exists.
        Returns None when this call recorded it, else the payment recorded first."""
        key = paid_key(invoice_id)
        for _ in range(3):
            now = _now()
            values = {**payment, "recorded_at": now, "expire_at": now + RETENTION}
            try:
                self._commit(key, values, {"exists": False})
                return None
            except LeaseLostError:
                pass  # recorded already: say what
            found = self._read(key)
            if found is not None:
                return found[0]
        raise RetryableError(f"the payment of {invoice_id} keeps changing; try again later")

    # --- what Linq tells us -------------------------------------------------------------------

    def record_delivery(
        self, key: str, part: str, delivered: bool, code: int | None, reason: str | None
    ) -> bool | None:
        """Record Linq's word on the `part` (text or link) of entry `key`: None when there is no
        such entry, False when nothing changed (a delivery is final: a `failed` after it, which
        Linq can send out of order, changes nothing), True when recorded."""
        for _ in range(5):
            found = self._read(key)
            if found is None:
                return None
            fields, version = found
            if (fields.get(f"{part}_delivery") or {}).get("status") == "delivered":
                return False
            status = {"status": "delivered" if delivered else "failed", "at": _now()}
            if not delivered:
                status.update(code=code, reason=reason)
            try:
                self._commit(key, {f"{part}_delivery": status}, {"updateTime": version})
            except LeaseLostError:
                continue  # written meanwhile (by the run itself, or another event): read again
            return True
        raise RetryableError(f"ledger entry {key} keeps changing; try again later")

    def opted_out_at(self, handle: str) -> dt.datetime | None:
        """When `handle` (the number a run would text) replied STOP, if it is on our own opt-out
        list now."""
        listing = self._listing(handle)
        return listing[0].changed_at if listing and listing[0].opted_out else None

    def set_opt_out(
        self, handle: str, opted_out: bool, at: dt.datetime, context: dict[str, Any]
    ) -> bool:
        """Put `handle` on our opt-out list, or take it off, as of its word written `at`: the
        later word wins whatever order the events arrive in (`hear_word`). Returns whether this
        word changed the list; a STOP heard again that is still what put the handle on the list
        says so again (the run that wrote it may have died before its note went out)."""
        key = _opt_out_key(handle)
        for _ in range(5):
            found = self._listing(handle)
            current, precondition = (
                (found[0], {"updateTime": found[1]}) if found else (None, {"exists": False})
            )
            after = hear_word(current, opted_out, at)
            if after is None:
                return opted_out and current is not None and current == Listing(True, at, at)
            values = {
                **context,
                "handle": handle,
                "opted_out": after.opted_out,
                "changed_at": after.changed_at,
                "heard_at": after.heard_at,
                "updated_at": _now(),
            }
            try:
                self._commit(key, values, precondition, OPT_OUTS)
            except LeaseLostError:
                continue  # another word landed meanwhile: read again
            return after.opted_out != (current.opted_out if current else False)
        raise RetryableError("the opt-out list keeps changing; try again later")

    def _listing(self, handle: str) -> tuple[Listing, str] | None:
        found = self._read(_opt_out_key(handle), OPT_OUTS)
        if found is None:
            return None
        fields, version = found
        changed_at, heard_at = fields.get("changed_at"), fields.get("heard_at")
        return (
            Listing(
                bool(fields.get("opted_out")),
                changed_at if isinstance(changed_at, dt.datetime) else None,
                heard_at if isinstance(heard_at, dt.datetime) else None,
            ),
            version,
        )

    def claim_event(self, webhook_id: str, run: str) -> EventClaim | None:
        """Own Linq event `webhook_id` for run `run`, or None when a run finished it.

        A claim is not an outcome: it is a lease, as a failed payment's is. While another run's
        lease on the event is live, that run may yet die, fail or time out before it finishes,
        so this raises RetryableError and Pub/Sub redelivers; once the lease has run out (or
        was released), the next delivery takes the event over. A claim written before leases
        (`claimed_at` only) reads as run out.
        """
        key = _event_key(webhook_id)
        for _ in range(5):
            now = _now()
            values = {
                "webhook_id": webhook_id,
                "run": run,
                "claimed_at": now,
                "lease_until": now + self._lease,
                "done": False,
                "expire_at": now + RETENTION,
            }
            found = self._read(key, LINQ_EVENTS)
            if found is None:
                precondition: dict[str, Any] = {"exists": False}
            else:
                fields, version = found
                if fields.get("done"):
                    return None
                lease_until = fields.get("lease_until")
                if isinstance(lease_until, dt.datetime) and lease_until > now:
                    raise RetryableError(
                        "another run is handling this Linq event; retried until it finishes or "
                        "its lease runs out",
                        lease_until=lease_until.isoformat(),
                    )
                precondition = {"updateTime": version}
            try:
                version = self._commit(key, values, precondition, LINQ_EVENTS)
            except LeaseLostError:
                continue  # claimed (or finished) meanwhile: look again
            return EventClaim(webhook_id, version, run)
        raise RetryableError("this Linq event keeps changing hands; try again later")

    def finish_event(self, claim: EventClaim) -> None:
        """Mark the event handled: every later delivery of it is a duplicate."""
        now = _now()
        self._own_event(claim, {"done": True, "lease_until": now, "finished_at": now})

    def release_event(self, claim: EventClaim) -> None:
        """End this run's lease on the event before a retry, so the redelivery acts at once."""
        self._own_event(claim, {"lease_until": _now()})

    def _own_event(self, claim: EventClaim, values: dict[str, Any]) -> None:
        """Write the event's record if this run still owns it: one that outlived its lease
        changes nothing (the run that took the event over finishes it)."""
        with contextlib.suppress(LeaseLostError):
            key = _event_key(claim.webhook_id)
            self._commit(key, values, {"updateTime": claim.version}, LINQ_EVENTS)

    def release(self, lease: Lease) -> None:
        """End the lease now, so the redelivery (or another message) need not wait for it."""
        now = _now()
        self._update(lease, {"lease_until": now, "updated_at": now})
