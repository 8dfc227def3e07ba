"""Firestore over REST: one keep-alive session, no gRPC stack to import at cold start."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from shared.adapters.documents import Conflict, Document, Fields
from shared.adapters.google import rest_session
from shared.core.errors import RetryableError

SCOPE = "https://www.googleapis.com/auth/datastore"
TIMEOUT = (3.05, 5.0)
# Firestore's answers to a write whose precondition no longer holds (ABORTED: contention, which
# committed nothing and asks for another try).
_CONFLICTS = frozenset({"ALREADY_EXISTS", "FAILED_PRECONDITION", "NOT_FOUND", "ABORTED"})
# Firestore takes at most 500 writes in one commit.
_COMMIT_WRITES = 500


def encode(value: Any) -> dict[str, Any]:
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
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": {k: encode(v) for k, v in value.items()}}}
    return {"stringValue": str(value)}


def decode(value: Mapping[str, Any]) -> Any:
    if "mapValue" in value:
        fields = value["mapValue"].get("fields") or {}
        return {k: decode(v) for k, v in fields.items()}
    if "integerValue" in value:
        return int(value["integerValue"])
    if "timestampValue" in value:
        return dt.datetime.fromisoformat(value["timestampValue"].replace("Z", "+00:00"))
    for kind in ("stringValue", "booleanValue", "doubleValue"):
        if kind in value:
            return value[kind]
    return None


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def error(response: requests.Response) -> Conflict | RetryableError:
    """Our error for a Firestore error response: a precondition that did not hold, or something
    to retry. Access problems are retried too: fixing IAM should not lose the payment."""
    try:
        status = (response.json().get("error") or {}).get("status")
    except (ValueError, AttributeError):
        status = None
    if status in _CONFLICTS:
        return Conflict(status)
    return RetryableError(
        f"Firestore {response.status_code}: {response.text[:200]}",
        vendor="firestore",
        status=response.status_code,
    )


class FirestoreDocuments:
    """The documents of one Firestore database."""

    def __init__(
        self,
        project: str,
        database: str,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
        emulator_host: str | None = None,
    ) -> None:
        own_session, base = rest_session(
            SCOPE, "FIRESTORE_EMULATOR_HOST", "https://firestore.googleapis.com", emulator_host
        )
        self._session = session or own_session
        self._timeout = timeout
        self.database = f"projects/{project}/databases/{database}"
        self._documents = f"{base}/v1/{self.database}/documents"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise RetryableError(
                f"Firestore unreachable: {type(exc).__name__}", vendor="firestore"
            ) from exc

    def _answer(self, method: str, url: str, **kwargs: Any) -> Any:
        answer = self._call(method, url, **kwargs)
        if not answer.ok:
            raise error(answer)
        return answer.json()

    def _name(self, collection: str, document_id: str) -> str:
        return f"{self.database}/documents/{collection}/{document_id}"

    def read(self, collection: str, document_id: str) -> Document | None:
        answer = self._call("GET", f"{self._documents}/{collection}/{quote(document_id, safe='')}")
        if answer.status_code == 404:
            return None
        if not answer.ok:
            raise error(answer)
        return _document(answer.json())

    def write(
        self, collection: str, document_id: str, values: Mapping[str, Any], version: str | None
    ) -> str:
        condition = {"exists": False} if version is None else {"updateTime": version}
        written = self._commit(collection, document_id, values, currentDocument=condition)
        return str(written["updateTime"])

    def increment(
        self, collection: str, document_id: str, counter: str, by: int, values: Mapping[str, Any]
    ) -> int:
        transform = {"fieldPath": counter, "increment": encode(by)}
        written = self._commit(collection, document_id, values, updateTransforms=[transform])
        return int(decode(written["transformResults"][0]))

    def _commit(
        self, collection: str, document_id: str, values: Mapping[str, Any], **more: Any
    ) -> dict[str, Any]:
        """Set the fields in `values` of one document, the write completed by `more` (its
        precondition, its transforms); returns the write's result."""
        write = {
            "update": {
                "name": self._name(collection, document_id),
                "fields": {k: encode(v) for k, v in values.items()},
            },
            "updateMask": {"fieldPaths": sorted(values)},
            **more,
        }
        answer = self._answer("POST", f"{self._documents}:commit", json={"writes": [write]})
        return dict(answer["writeResults"][0])

    def find(self, collection: str, path: str, value: Any) -> list[Document]:
        where = _compare(path, "EQUAL", value)
        return self._query({"from": [{"collectionId": collection}], "where": where})

    def up_to(
        self, collection: str, equal: tuple[str, Any], at_most: tuple[str, Any], limit: int
    ) -> list[Document]:
        both = [
            _compare(equal[0], "EQUAL", equal[1]),
            _compare(at_most[0], "LESS_THAN_OR_EQUAL", at_most[1]),
        ]
        return self._query(
            {
                "from": [{"collectionId": collection}],
                "where": {"compositeFilter": {"op": "AND", "filters": both}},
                "orderBy": [{"field": {"fieldPath": at_most[0]}, "direction": "ASCENDING"}],
                "limit": limit,
            }
        )

    def at_least(
        self, collection: str, at_least: tuple[str, Any], paths: Sequence[str]
    ) -> list[Document]:
        return self._query(
            {
                "from": [{"collectionId": collection}],
                "select": {"fields": [{"fieldPath": path} for path in paths]},
                "where": _compare(at_least[0], "GREATER_THAN_OR_EQUAL", at_least[1]),
            }
        )

    def _query(self, query: Mapping[str, Any]) -> list[Document]:
        rows = self._answer("POST", f"{self._documents}:runQuery", json={"structuredQuery": query})
        return [_document(row["document"]) for row in rows if "document" in row]

    def pages(self, collection: str, paths: Sequence[str], size: int) -> Iterator[list[Document]]:
        """A query ordered by `__name__` with a cursor, rather than listing the collection with a
        page token: the emulator returns at most 150 documents a listed page and spends seconds
        on each request however small, which made a 100,000-entry ledger a half-hour read."""
        query: dict[str, Any] = {
            "from": [{"collectionId": collection}],
            "select": {"fields": [{"fieldPath": path} for path in paths]},
            "orderBy": [{"field": {"fieldPath": "__name__"}, "direction": "ASCENDING"}],
            "limit": size,
        }
        while True:
            page = self._query(query)
            yield page
            if len(page) < size:
                return
            last = {"referenceValue": self._name(collection, page[-1].id)}
            query["startAt"] = {"values": [last], "before": False}

    def count(
        self,
        collection: str,
        equal: tuple[str, Any] | None = None,
        at_least: tuple[str, Any] | None = None,
    ) -> int:
        """An aggregation: one read per 1,000 documents counted."""
        filters = []
        if equal is not None:
            filters.append(_compare(equal[0], "EQUAL", equal[1]))
        if at_least is not None:
            filters.append(_compare(at_least[0], "GREATER_THAN_OR_EQUAL", at_least[1]))
        structured: dict[str, Any] = {"from": [{"collectionId": collection}]}
        if len(filters) == 1:
            structured["where"] = filters[0]
        elif filters:
            structured["where"] = {"compositeFilter": {"op": "AND", "filters": filters}}
        query = {
            "structuredAggregationQuery": {
                "structuredQuery": structured,
                "aggregations": [{"alias": "documents", "count": {}}],
            }
        }
        rows = self._answer("POST", f"{self._documents}:runAggregationQuery", json=query)
        found = [row["result"] for row in rows if "result" in row]
        return int(found[0]["aggregateFields"]["documents"]["integerValue"]) if found else 0

    def put(
        self,
        collection: str,
        documents: Iterable[tuple[str, Fields]],
        paths: Sequence[str] | None = None,
    ) -> int:
        # With paths: only those fields, of documents that exist.
        masked: dict[str, Any] = {}
        if paths is not None:
            masked = {
                "updateMask": {"fieldPaths": list(paths)},
                "currentDocument": {"exists": True},
            }

        def write(document_id: str, fields: Fields) -> dict[str, Any]:
            encoded = {k: encode(v) for k, v in fields.items()}
            name = self._name(collection, document_id)
            return {"update": {"name": name, "fields": encoded}, **masked}

        remaining, written = iter(documents), 0
        while writes := [write(*pair) for pair in itertools.islice(remaining, _COMMIT_WRITES)]:
            self._answer("POST", f"{self._documents}:commit", json={"writes": writes})
            written += len(writes)
        return written


def _compare(path: str, op: str, value: Any) -> dict[str, Any]:
    return {"fieldFilter": {"field": {"fieldPath": path}, "op": op, "value": encode(value)}}


def _document(found: Mapping[str, Any]) -> Document:
    fields = {k: decode(v) for k, v in (found.get("fields") or {}).items()}
    return Document(found["name"].rsplit("/", 1)[1], str(found["updateTime"]), fields)
