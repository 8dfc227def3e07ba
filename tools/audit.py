"""`./dev audit`: what deploy.sh ships (every package of both functions, pinned by hash as in
requirements-dev.lock: tools/stage.py) is what the functions' runtime can install, by those
hashes; and pip-audit over exactly that set, with PyPI's own advisories where pip-audit cannot
reach its vulnerability service."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from tools.stage import FUNCTIONS, TARGET_PYTHON, StageError, requirements_file
from tools.stage import requirements as shipped_requirements

PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"
# The wheels the runtime's pip accepts: deploy.sh's python313 runs on Google's google-22 stack
# (Ubuntu 22.04, glibc 2.35) on x86_64.
RUNTIME_GLIBC = (2, 35)
RUNTIME_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(RUNTIME_GLIBC[1], 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)


def shipped() -> list[str]:
    """NAME==VERSION of every package deploy.sh ships, over both functions."""
    return sorted(
        {
            f"{pin.name}=={pin.version}"
            for function in FUNCTIONS
            for pin in shipped_requirements(function)
        }
    )


def refused() -> list[str]:
    """Each function whose requirements.txt the runtime's pip would refuse (a file whose hash is
    not listed, a dependency that is not, a package without a wheel for the runtime), with pip's
    reason: pip fetches each set as Cloud Build installs it, for the runtime's Python and
    platform."""
    abi = "cp" + TARGET_PYTHON.replace(".", "")
    answers = []
    with tempfile.TemporaryDirectory() as work:
        for function in FUNCTIONS:
            listing = Path(work) / f"{function}.txt"
            try:
                listing.write_text(requirements_file(function), encoding="utf-8")
            except StageError as exc:
                sys.exit(f"audit: {exc}")
            answer = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    # As in the file; pip wants it before it reads the file, for another platform.
                    "--only-binary=:all:",
                    f"--python-version={TARGET_PYTHON}",
                    "--implementation=cp",
                    f"--abi={abi}",
                    *(f"--platform={platform}" for platform in RUNTIME_PLATFORMS),
                    f"--dest={work}/wheels",
                    f"--requirement={listing}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode:
                # This machine's pip configuration may warn about its own extra indexes.
                errors = [
                    line for line in answer.stderr.splitlines() if not line.startswith("WARNING:")
                ]
                answers.append(f"{function}: " + "\n".join(errors)[:2000])
    return answers


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


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="./dev audit", description=__doc__).parse_args(argv)
    refusals = refused()
    for refusal in refusals:
        print(f"audit: REFUSED on python{TARGET_PYTHON} (Linux x86_64): {refusal}")
    if not refusals:
        print(f"audit: both functions' requirements install by hash on python{TARGET_PYTHON}")
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
            latest = f" (latest {found[0]})" if found else ""
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
            "versions older than the latest):"
        )
        for line in unaudited:
            print(f"  {line}")
    return 1 if vulnerable or refusals else 0


if __name__ == "__main__":
    sys.exit(main())
