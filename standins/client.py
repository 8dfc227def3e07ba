"""Drive a stand-in running in another process through its `/_control/` endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests


class StandinClient:
    """The control API of a stand-in process, mirroring the in-process methods."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = requests.Session()

    def _call(self, method: str, name: str, body: Any = None) -> Any:
        response = self._http.request(method, f"{self.url}/_control/{name}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "reset")

    def load(self, scenario: Mapping[str, Any]) -> None:
        self._call("POST", "scenario", dict(scenario))

    def add_fault(self, path: str = "", **fault: Any) -> None:
        self._call("POST", "faults", {"path": path, **fault})

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests"))

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "stats"))

    # Linq only
    def messages(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "messages"))

    def inbound(
        self, sender: str, text: str, *, chat_id: str | None = None, reconciled: bool = False
    ) -> bool:
        body = {"from": sender, "text": text, "chat_id": chat_id, "reconciled": reconciled}
        return bool(self._call("POST", "inbound", body)["opted_out"])

    def set_line_status(
        self, phone_number: str, status: str | None = None, reputation: str | None = None
    ) -> dict[str, Any]:
        body = {"phone_number": phone_number, "status": status, "reputation": reputation}
        return dict(self._call("POST", "line_status", body))

    def webhooks(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "webhooks"))

    # Stripe only
    def update_invoice(self, invoice_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"invoices/{invoice_id}", dict(patch)))

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"invoices/{invoice_id}/pay"))

    # Slack only
    def notes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "notes"))
