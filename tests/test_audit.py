"""`./dev audit`'s account of what it audited: the known vulnerabilities and the packages it could
not audit, one per line. pip-audit's report and PyPI's pages are given as they come (pip-audit's
JSON, PyPI's latest version); the install check is tests/test_deploy.py's."""

from __future__ import annotations

import pytest

from tools import audit

# pip-audit's JSON `dependencies`: one audited, two it skipped (not on its vulnerability service).
PIP_AUDIT = [
    {"name": "requests", "version": "2.33.0", "vulns": []},
    {"name": "idna", "version": "3.20", "skip_reason": "Dependency not found on PyPI (3.20)"},
    {"name": "regex", "skip_reason": "Dependency not found on PyPI (2026.11.19)"},
]
LATEST = {"idna": "3.21", "regex": "2026.12.2"}


def test_the_packages_it_could_not_audit_come_one_per_line(monkeypatch, capsys):
    monkeypatch.setattr(audit, "refused", list)
    monkeypatch.setattr(audit, "_pip_audit", lambda: PIP_AUDIT)
    monkeypatch.setattr(audit, "_pypi_advisories", lambda name, version: (LATEST[name], []))
    assert audit.main([]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "audit: 1 packages audited, 0 known vulnerabilities",
        "audit: 2 packages could not be audited here (no advisory data for versions older than "
        "the latest):",
        "  idna 3.20 (latest 3.21)",
        "  regex 2026.11.19 (latest 2026.12.2)",
    ]


def test_help_describes_the_audit_and_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(audit, "refused", lambda: pytest.fail("the audit ran"))
    with pytest.raises(SystemExit) as exited:
        audit.main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ./dev audit")
