"""What the ledger needs of a document database: Firestore's promises, in a few calls.

Two stores keep them: Firestore over REST (`firestore.py`) and one in memory (`memory.py`), held
to the same contract by one test suite (tests/test_ledger.py) so that they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# A field's value: a str, int, float, bool, datetime, None, or a mapping of those.
Fields = dict[str, Any]


class Conflict(Exception):
    """A write's precondition did not hold: the document exists (or does not), or it changed
    since the version the write was conditional on (Firestore's ABORTED too: contention that
    committed nothing). Nothing was written."""


@dataclass(frozen=True)
class Document:
    """A document as read: its id, its version (Firestore's `updateTime`) and its fields."""

    id: str
    version: str
    fields: Fields


class Documents(Protocol):
    """A collection-of-documents database with conditional writes."""

    def read(self, collection: str, document_id: str) -> Document | None:
        """The document, or None when there is none."""
        ...

    def write(
        self, collection: str, document_id: str, values: Mapping[str, Any], version: str | None
    ) -> str:
        """Set the fields in `values` (the others stay) if the document is still at `version`,
        or, with `version` None, create it if it does not exist; returns the new version.
        Raises Conflict when the precondition does not hold."""
        ...

    def increment(
        self, collection: str, document_id: str, counter: str, by: int, values: Mapping[str, Any]
    ) -> int:
        """Add `by` to the whole number in field `counter` (one that is not a number counts as
        0) and set the fields in `values`, creating the document if need be: one write, with no
        precondition, that no other write made at the same time can undo or repeat (Firestore's
        increment transform). Returns the counter as this write left it."""
        ...

    def find(self, collection: str, path: str, value: Any) -> list[Document]:
        """Every document whose field `path` (dotted for a field of a map) equals `value`."""
        ...

    def up_to(
        self, collection: str, equal: tuple[str, Any], at_most: tuple[str, Any], limit: int
    ) -> list[Document]:
        """At most `limit` documents whose field `equal[0]` equals `equal[1]` and whose field
        `at_most[0]` is at most `at_most[1]`, ordered by that field (then by id)."""
        ...

    def at_least(
        self, collection: str, at_least: tuple[str, Any], paths: Sequence[str]
    ) -> list[Document]:
        """Every document whose field `at_least[0]` is at least `at_least[1]`, with only the
        fields at `paths`."""
        ...

    def pages(self, collection: str, paths: Sequence[str], size: int) -> Iterator[list[Document]]:
        """Every document by id, `size` at a time, with only the fields at `paths`."""
        ...

    def count(
        self,
        collection: str,
        equal: tuple[str, Any] | None = None,
        at_least: tuple[str, Any] | None = None,
    ) -> int:
        """How many documents the collection holds: all, or those whose field `equal[0]` equals
        `equal[1]`, or whose field `at_least[0]` is at least `at_least[1]`."""
        ...

    def put(
        self,
        collection: str,
        documents: Iterable[tuple[str, Fields]],
        paths: Sequence[str] | None = None,
    ) -> int:
        """Write whole documents, unconditionally (a seeded ledger), or with `paths` only those
        fields of documents that exist; returns how many."""
        ...
