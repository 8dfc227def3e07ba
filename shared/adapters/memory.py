"""Documents in memory, keeping Firestore's promises: a create only if absent, an update only if
unchanged since the version read, an increment no other write undoes, the sweep's query with its
order and limit, lookups by field, pages by id. Thread-safe. The tests run the workflow on it;
the contract suite in tests/test_ledger.py holds it to what the Firestore emulator does."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from shared.adapters.documents import Conflict, Document, Fields


class MemoryDocuments:
    """Every collection of one database, in this process."""

    def __init__(self) -> None:
        self._collections: dict[str, dict[str, tuple[str, Fields]]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()

    def _collection(self, name: str) -> dict[str, tuple[str, Fields]]:
        return self._collections.setdefault(name, {})

    def read(self, collection: str, document_id: str) -> Document | None:
        with self._lock:
            found = self._collection(collection).get(document_id)
            return _document(document_id, found) if found is not None else None

    def write(
        self, collection: str, document_id: str, values: Mapping[str, Any], version: str | None
    ) -> str:
        with self._lock:
            documents = self._collection(collection)
            found = documents.get(document_id)
            if (found is None) != (version is None) or (found is not None and found[0] != version):
                raise Conflict("ALREADY_EXISTS" if version is None else "FAILED_PRECONDITION")
            fields = copy.deepcopy(found[1]) if found is not None else {}
            fields.update(copy.deepcopy(dict(values)))
            return self._store(documents, document_id, fields)

    def increment(
        self, collection: str, document_id: str, counter: str, by: int, values: Mapping[str, Any]
    ) -> int:
        with self._lock:
            documents = self._collection(collection)
            found = documents.get(document_id)
            fields = copy.deepcopy(found[1]) if found is not None else {}
            fields.update(copy.deepcopy(dict(values)))
            current = fields.get(counter)
            counted = isinstance(current, int) and not isinstance(current, bool)
            after: int = (current if counted else 0) + by
            fields[counter] = after
            self._store(documents, document_id, fields)
            return after

    def _store(
        self, documents: dict[str, tuple[str, Fields]], document_id: str, fields: Fields
    ) -> str:
        version = f"v{next(self._versions):012d}"
        documents[document_id] = (version, fields)
        return version

    def find(self, collection: str, path: str, value: Any) -> list[Document]:
        with self._lock:
            return [
                _document(key, found)
                for key, found in sorted(self._collection(collection).items())
                if _at(found[1], path) == value
            ]

    def up_to(
        self, collection: str, equal: tuple[str, Any], at_most: tuple[str, Any], limit: int
    ) -> list[Document]:
        path, until = at_most
        with self._lock:
            matched = [
                (_at(found[1], path), key, found)
                for key, found in self._collection(collection).items()
                if _at(found[1], equal[0]) == equal[1]
                and _comparable(_at(found[1], path), until)
                and _at(found[1], path) <= until
            ]
        matched.sort(key=lambda row: (row[0], row[1]))
        return [_document(key, found) for _, key, found in matched[:limit]]

    def at_least(
        self, collection: str, at_least: tuple[str, Any], paths: Sequence[str]
    ) -> list[Document]:
        with self._lock:
            return [
                Document(key, version, _project(fields, paths))
                for key, (version, fields) in sorted(self._collection(collection).items())
                if _at_least(fields, at_least)
            ]

    def pages(self, collection: str, paths: Sequence[str], size: int) -> Iterator[list[Document]]:
        with self._lock:
            documents = sorted(self._collection(collection).items())
        projected = [
            Document(key, version, _project(fields, paths)) for key, (version, fields) in documents
        ]
        for start in itertools.count(0, size):
            page = projected[start : start + size]
            yield page
            if len(page) < size:
                return

    def count(
        self,
        collection: str,
        equal: tuple[str, Any] | None = None,
        at_least: tuple[str, Any] | None = None,
    ) -> int:
        with self._lock:
            return sum(
                1
                for _, fields in self._collection(collection).values()
                if (equal is None or _at(fields, equal[0]) == equal[1])
                and (at_least is None or _at_least(fields, at_least))
            )

    def put(
        self,
        collection: str,
        documents: Iterable[tuple[str, Fields]],
        paths: Sequence[str] | None = None,
    ) -> int:
        written = 0
        with self._lock:
            stored = self._collection(collection)
            for document_id, fields in documents:
                if paths is None:
                    self._store(stored, document_id, copy.deepcopy(fields))
                else:
                    found = stored.get(document_id)
                    if found is None:
                        raise Conflict("NOT_FOUND")
                    changed = {**found[1], **{p: copy.deepcopy(fields.get(p)) for p in paths}}
                    self._store(stored, document_id, changed)
                written += 1
        return written


def _document(document_id: str, found: tuple[str, Fields]) -> Document:
    return Document(document_id, found[0], copy.deepcopy(found[1]))


def _at(fields: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None."""
    value: Any = fields
    for name in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _at_least(fields: Mapping[str, Any], bound: tuple[str, Any]) -> bool:
    """Whether the field at `bound[0]` is at least `bound[1]`, as a Firestore range filter reads
    it (a value of another kind never is)."""
    value = _at(fields, bound[0])
    return _comparable(value, bound[1]) and value >= bound[1]


def _comparable(value: Any, bound: Any) -> bool:
    """Whether Firestore would compare the two in a range filter: values of one kind only."""
    if isinstance(bound, dt.datetime):
        return isinstance(value, dt.datetime)
    if isinstance(bound, str):
        return isinstance(value, str)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _project(fields: Mapping[str, Any], paths: Sequence[str]) -> Fields:
    """Only the fields at `paths` (a dotted path keeps only that field of a map)."""
    projected: Fields = {}
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in fields:
            continue
        if not rest:
            projected[head] = copy.deepcopy(fields[head])
        elif isinstance(fields[head], Mapping) and rest in fields[head]:
            projected.setdefault(head, {})[rest] = copy.deepcopy(fields[head][rest])
    return projected
