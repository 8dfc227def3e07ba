"""`./dev audit`: pip-audit over exactly what deploy.sh ships (every package of both functions,
pinned as in constraints.txt: tools/stage.py), and PyPI's own advisories where pip-audit cannot
reach its vulnerability service."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from tools.stage import FUNCTIONS, StageError
from tools.stage import requirements as shipped_requirements

PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"


def shipped() -> list[str]:
    """The pinned requirement lines deploy.sh ships, over both functions."""
    return sorted({line for function in FUNCTIONS for line in shipped_requirements(function)})


def _pip_audit() -> list[dict[str, Any]]:
    pip_audit = Path(sys.executable).parent / "pip-audit"
    try:
        lines = shipped()
    except StageError as exc:
        sys.exit(f"audit: {exc}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as listing:
        listing.write("\n".join(lines) + "\n")
        listing.flush()
        # Every version is pinned and the set is complete: nothing to resolve or install.
        answer = subprocess.run(
            [
                str(pip_audit),
                f"--requirement={listing.name}",
                "--no-deps",
                "--disable-pip",
                "--format=json",
                "--progress-spinner=off",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    # pip-audit exits 1 when it finds vulnerabilities; its JSON report is what counts.
    try:
        return list(json.loads(answer.stdout)["dependencies"])
    except (ValueError, KeyError):
        sys.exit(f"audit: pip-audit gave no report:\n{answer.stderr[-2000:]}")


def _pypi_advisories(name: str, version: str) -> tuple[str, list[str]] | None:
    """(latest version, advisory ids) from PyPI's project page, whose `vulnerabilities` list
    concerns the latest release; None when PyPI cannot be read."""
    try:
        page = requests.get(PYPI_PROJECT.format(name=name), timeout=20).json()
    except (requests.RequestException, ValueError):
        return None
    latest = page["info"]["version"]
    advisories = [v["id"] for v in page.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return latest, advisories if latest == version else []


def main() -> int:
    vulnerable, unaudited, audited = [], [], 0
    for dependency in _pip_audit():
        name, version = dependency["name"], dependency.get("version")
        if "skip_reason" not in dependency:
            audited += 1
            vulnerable += [f"{name} {version}: {v['id']}" for v in dependency.get("vulns", [])]
            continue
        version = version or dependency["skip_reason"].rsplit("(", 1)[-1].rstrip(")")
        found = _pypi_advisories(name, version)
        if found is None or found[0] != version:
            latest = f", latest {found[0]}" if found else ""
            unaudited.append(f"{name} {version}{latest}")
            continue
        audited += 1
        vulnerable += [f"{name} {version}: {advisory}" for advisory in found[1]]
    print(f"audit: {audited} packages audited, {len(vulnerable)} known vulnerabilities")
    for line in vulnerable:
        print(f"  VULNERABLE {line}")
    if unaudited:
        print(
            f"audit: {len(unaudited)} packages could not be audited here (no advisory data for "
            "versions older than the latest): " + ", ".join(unaudited)
        )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
