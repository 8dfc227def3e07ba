"""The README and docs/ stay true to the code: the README short enough to read in five minutes,
every link and anchor they give leads somewhere, every `./dev` command they name exists, and the
test count they state is the suite's."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted(
    [
        README,
        ROOT / "RELIABILITY.md",
        ROOT / "BENCHMARKS.md",
        *ROOT.glob("tests/README.md"),
        *(ROOT / "docs").glob("*.md"),
    ]
)
# [text](target): the target up to the closing parenthesis, without a title.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _prose(page: Path) -> str:
    """The page without its code blocks (a link or a heading in code is not one)."""
    return FENCE.sub("", page.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(page).splitlines():
        if match := re.match(r"^#{1,6} (.+)$", line):
            base = slug(match.group(1))
            # A heading written again gets -1, -2, ... as on GitHub.
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def test_the_slug_is_githubs():
    assert slug("Live sandbox (your own Stripe and Linq accounts)") == (
        "live-sandbox-your-own-stripe-and-linq-accounts"
    )
    assert slug("Operator controls, with examples") == "operator-controls-with-examples"
    assert slug("The `./dev report` figures") == "the-dev-report-figures"


def test_the_readme_reads_in_five_minutes():
    assert len(README.read_text().split()) <= 1500


def test_the_readme_links_every_page_of_docs():
    text = README.read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name}" in text, page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing = not linked.exists()
        if missing or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == []


def _commands() -> set[str]:
    """The commands of `dev`'s one list (`./dev help` prints it)."""
    table = re.search(r'^COMMANDS="\\\n(.*?)"$', (ROOT / "dev").read_text(), re.M | re.S)
    assert table is not None
    return {line.split("|", 1)[0] for line in table.group(1).splitlines()}


def test_every_dev_command_the_docs_name_exists():
    commands = _commands() | {"help"}
    named = set()
    for page in PAGES:
        named |= set(re.findall(r"\./dev ([a-z][a-z-]*)", page.read_text()))
    assert named - commands == set()
    # And the development page lists every command there is.
    development = (ROOT / "docs" / "development.md").read_text()
    assert {c for c in _commands() if f"./dev {c}" not in development} == set()


def _stated_count() -> int:
    match = re.search(r"about ([0-9,]+) tests", README.read_text())
    assert match is not None, "README states the suite's size as 'about N tests'"
    return int(match.group(1).replace(",", ""))


@pytest.mark.integration
def test_the_readmes_test_count_is_the_suites_within_a_tenth():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    match = re.search(r"^(\d+) tests collected", done.stdout, re.M)
    assert match is not None, done.stdout[-2000:] + done.stderr[-2000:]
    collected = int(match.group(1))
    assert abs(collected - _stated_count()) <= collected / 10, collected
