"""A recording HTTP proxy in front of the Firestore emulator, which keeps no request journal.

Run as its own process (`python -m bench.journal_proxy --port P --target HOST:PORT`), so the
recover function's ledger calls get start and end times like the stand-ins' journals, without
touching product code: the function's FIRESTORE_EMULATOR_HOST points here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import flask
import urllib3

from standins import recording_proxy
from standins.serving import Server, serve_until_signalled


def create_app(target: str) -> flask.Flask:
    """Forward every request to `target` (HOST:PORT) and journal it, with what each commit
    writes."""

    def describe(request: flask.Request) -> dict[str, Any]:
        if not request.path.endswith(":commit"):
            return {}
        return {"writes": commit_writes(request.get_json(silent=True))}

    # A pooled connection the emulator has closed is retried once on a new one, any method.
    retries = urllib3.Retry(1, allowed_methods=None)
    return recording_proxy.create_app(target, describe, retries)


def commit_writes(body: Any) -> list[dict[str, Any]]:
    """What each write of a `:commit` changes (its `updateMask` field paths) and on what
    condition (`exists` or `updateTime`): all it takes to tell a claim from a plan or an outcome,
    without journaling the plan's text and recipient."""
    writes = body.get("writes") if isinstance(body, dict) else None
    return [
        {
            "fields": sorted((write.get("updateMask") or {}).get("fieldPaths") or []),
            "precondition": sorted(write.get("currentDocument") or {}),
        }
        for write in writes or []
        if isinstance(write, dict)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT of the emulator")
    args = parser.parse_args(argv)
    server = Server(create_app(args.target), args.port)
    server.start()
    return serve_until_signalled(
        server, f"journal proxy on 127.0.0.1:{server.port} -> {args.target}"
    )


if __name__ == "__main__":
    sys.exit(main())
