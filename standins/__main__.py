"""Run one stand-in as a process: python -m standins stripe|linq|slack --port-file PATH."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from standins.base import StandinServer
from standins.linq_api import (
    DEFAULT_CAPABILITY_LIMIT,
    DEFAULT_CAPABILITY_WINDOW_S,
    DEFAULT_PAIR_LIMIT,
    DEFAULT_PAIR_WINDOW_S,
    LINQ_TOKEN,
    LinqStandin,
)
from standins.serving import serve_until_signalled
from standins.slack_api import SlackStandin
from standins.stripe_api import (
    DEFAULT_ENDPOINT_RATE,
    DEFAULT_GLOBAL_RATE_LIVE,
    DEFAULT_GLOBAL_RATE_TEST,
    STRIPE_TEST_KEY,
    StripeStandin,
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, default=0, help="0 lets the OS pick a free port")
    common.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    common.add_argument("--scenario", type=Path, help="JSON scenario file to load at start")
    common.add_argument("--latency-ms", type=float, default=0.0, help="delay per API request")
    parser = argparse.ArgumentParser(prog="python -m standins", description=__doc__)
    services = parser.add_subparsers(dest="service", required=True)

    stripe = services.add_parser("stripe", parents=[common], help="Stripe API stand-in")
    stripe.add_argument(
        "--api-key", action="append", help=f"accepted key (default {STRIPE_TEST_KEY})"
    )
    stripe.add_argument("--endpoint-rate", type=int, default=DEFAULT_ENDPOINT_RATE)
    stripe.add_argument(
        "--global-rate", type=int, help=f"both modes (default {DEFAULT_GLOBAL_RATE_TEST}/s test)"
    )
    stripe.add_argument(
        "--global-rate-live", type=int, help=f"default {DEFAULT_GLOBAL_RATE_LIVE}/s"
    )

    linq = services.add_parser("linq", parents=[common], help="Linq Partner API v3 stand-in")
    linq.add_argument("--token", action="append", help=f"accepted token (default {LINQ_TOKEN})")
    linq.add_argument("--pair-limit", type=int, default=DEFAULT_PAIR_LIMIT)
    linq.add_argument("--pair-window-s", type=float, default=DEFAULT_PAIR_WINDOW_S)
    linq.add_argument("--capability-limit", type=int, default=DEFAULT_CAPABILITY_LIMIT)
    linq.add_argument("--capability-window-s", type=float, default=DEFAULT_CAPABILITY_WINDOW_S)

    services.add_parser("slack", parents=[common], help="Slack incoming-webhook stand-in")
    return parser


def _build(args: argparse.Namespace) -> StandinServer:
    scenario = json.loads(args.scenario.read_text(encoding="utf-8")) if args.scenario else None
    common: dict[str, Any] = {"latency_s": args.latency_ms / 1000, "scenario": scenario}
    if args.service == "stripe":
        global_test = DEFAULT_GLOBAL_RATE_TEST if args.global_rate is None else args.global_rate
        global_live = args.global_rate_live
        if global_live is None:
            global_live = DEFAULT_GLOBAL_RATE_LIVE if args.global_rate is None else args.global_rate
        return StripeStandin(
            args.port,
            api_keys=args.api_key or (STRIPE_TEST_KEY,),
            endpoint_rate=args.endpoint_rate,
            global_rate_test=global_test,
            global_rate_live=global_live,
            **common,
        )
    if args.service == "linq":
        return LinqStandin(
            args.port,
            tokens=args.token or (LINQ_TOKEN,),
            pair_limit=args.pair_limit,
            pair_window_s=args.pair_window_s,
            capability_limit=args.capability_limit,
            capability_window_s=args.capability_window_s,
            **common,
        )
    return SlackStandin(args.port, **common)


def _write_port_file(path: Path, port: int) -> None:
    # Write then rename so a watcher never reads a half-written port.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    server = _build(args)
    server.start()
    if args.port_file:
        _write_port_file(args.port_file, server.port)
    return serve_until_signalled(server, f"{args.service} stand-in listening on {server.url}")


if __name__ == "__main__":
    sys.exit(main())
