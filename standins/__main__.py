"""Run one stand-in as a process: python -m standins stripe|linq|slack --port-file PATH.

Each keyword argument of a stand-in's constructor is an option of its subcommand (`pair_limit`
is `--pair-limit`, 0 turning a limit off); one whose default is a tuple (the accepted keys or
tokens) is repeatable.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path

from standins.base import StandinServer
from standins.linq_api import LinqStandin
from standins.serving import serve_until_signalled
from standins.slack_api import SlackStandin
from standins.stripe_api import StripeStandin

SERVERS: dict[str, type[StandinServer]] = {
    "stripe": StripeStandin,
    "linq": LinqStandin,
    "slack": SlackStandin,
}
# Keyword arguments every stand-in takes: set by the common options, or (the clock) only by a
# test that runs the stand-in in-process.
COMMON = ("latency_s", "scenario", "clock")


def _options(server: type[StandinServer]) -> list[inspect.Parameter]:
    """The keyword arguments of `server`'s own."""
    return [
        parameter
        for parameter in inspect.signature(server).parameters.values()
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.name not in COMMON
    ]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, default=0, help="0 lets the OS pick a free port")
    common.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    common.add_argument("--scenario", type=Path, help="JSON scenario file to load at start")
    common.add_argument("--latency-ms", type=float, default=0.0, help="delay per API request")
    parser = argparse.ArgumentParser(prog="python -m standins", description=__doc__)
    services = parser.add_subparsers(dest="service", required=True)
    for name, server in SERVERS.items():
        summary = (server.__doc__ or name).splitlines()[0]
        options = services.add_parser(name, parents=[common], help=summary)
        for option in _options(server):
            flag = "--" + option.name.replace("_", "-")
            if isinstance(option.default, tuple):
                default = ", ".join(option.default)
                options.add_argument(flag, action="append", help=f"repeatable (default {default})")
            else:
                options.add_argument(
                    flag, type=type(option.default), help=f"default {option.default}"
                )
    return parser


def _build(args: argparse.Namespace) -> StandinServer:
    server = SERVERS[args.service]
    scenario = json.loads(args.scenario.read_text(encoding="utf-8")) if args.scenario else None
    given = {
        option.name: getattr(args, option.name)
        for option in _options(server)
        if getattr(args, option.name) is not None
    }
    return server(args.port, latency_s=args.latency_ms / 1000, scenario=scenario, **given)


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
