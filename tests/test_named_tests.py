"""Every test file and test the documents name exists: a claim cites its proof by name, and a
renamed or removed test must take the citation with it."""

import ast
import functools
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    *(ROOT / name for name in ("README.md", "RELIABILITY.md", "BENCHMARKS.md", "tests/README.md")),
    *sorted((ROOT / "docs").glob("*.md")),
]
# `test_x.py` or `tests/test_x.py`, with `::test_name` or not; or a lone `test_name` in backticks,
# which belongs to the file named last before it in the same paragraph or table row.
REFERENCE = re.compile(r"(?:tests/)?(test_\w+\.py)(?:::(test_\w+))?|`(test_\w+)(?:\[[^\]`]*\])?`")
# A paragraph, or one row of a table.
PASSAGE = re.compile(r"\n\s*\n|\n(?=\|)")


@functools.cache
def defined_tests() -> Mapping[str, frozenset[str]]:
    """The test functions (and methods) each test file defines; read once for every document."""
    found = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = frozenset(
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        )
    return found


def missing_in(text: str, tests: Mapping[str, Collection[str]]) -> list[str]:
    """Each reference in `text` to a test file or test that does not exist."""
    everywhere = set().union(*tests.values())
    missing = []
    for passage in PASSAGE.split(text):
        current = None
        for match in REFERENCE.finditer(passage):
            file, name, lone = match.groups()
            if file is not None:
                current = file if file in tests else None
                if current is None:
                    missing.append(file)
                elif name is not None and name not in tests[file]:
                    missing.append(f"{file}::{name}")
            elif current is not None and lone not in tests[current]:
                missing.append(f"{current}::{lone}")
            elif current is None and lone not in everywhere:
                missing.append(lone)
    return missing


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_test_a_document_names_exists(document):
    assert missing_in(document.read_text(encoding="utf-8"), defined_tests()) == []


def test_a_missing_test_is_found_however_it_is_named():
    tests = {"test_a.py": {"test_one", "test_two"}, "test_b.py": {"test_three"}}
    text = (
        "| claim | `test_a.py::test_one`, `test_two`, `test_three`, `test_gone[a case]` |\n"
        "| other | `tests/test_b.py` (`test_three`), `test_c.py`, `test_b.py::test_four` |\n"
        "\n"
        "A paragraph: `test_three`, `test_five`."
    )
    assert missing_in(text, tests) == [
        "test_a.py::test_three",
        "test_a.py::test_gone",
        "test_c.py",
        "test_b.py::test_four",
        "test_five",
    ]
