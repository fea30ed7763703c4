"""Serve the Gemini Live stand-in until SIGTERM or SIGINT.

    python -m standin --host 127.0.0.1 --port 8765 --tls-dir DIR

Once listening it writes one line to stdout, ``stand-in listening on URL ca=PATH``,
so a parent process can wait for it and trust ``PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import typing
from collections.abc import Sequence

from standin.records import Behaviour
from standin.server import StandIn

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line: address, TLS directory and one flag per Behaviour field."""
    parser = argparse.ArgumentParser(
        prog="python -m standin",
        description="Offline stand-in for the Gemini Live API (TLS WebSocket).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--tls-dir", help="where ca.pem is written (default: a temp dir)")
    parser.add_argument(
        "--cert-host", action="append", default=[], help="extra certificate name (repeatable)"
    )
    parser.add_argument(
        "--record-limit-bytes", type=int, default=0,
        help="media kept per connection in memory (default 0: none, nobody reads it)",
    )  # fmt: skip
    parser.add_argument("--log-level", default="INFO")
    hints = typing.get_type_hints(Behaviour)
    for spec in dataclasses.fields(Behaviour):
        flag = "--" + spec.name.replace("_", "-")
        kind = hints[spec.name]
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)  # X | None
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=spec.default)
        else:
            parser.add_argument(
                flag, type=kind, default=spec.default, metavar=kind.__name__.upper()
            )
    return parser


def behaviour_from(args: argparse.Namespace) -> Behaviour:
    """The Behaviour the parsed flags describe."""
    return Behaviour(
        **{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(Behaviour)}
    )


async def serve(args: argparse.Namespace) -> None:
    """Run the stand-in until a termination signal arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    standin = StandIn(
        behaviour=behaviour_from(args), tls_dir=args.tls_dir, host=args.host, port=args.port,
        cert_hosts=args.cert_host, record_limit_bytes=args.record_limit_bytes,
    )  # fmt: skip
    async with standin:
        sys.stdout.write(f"stand-in listening on {standin.base_url} ca={standin.ca_path}\n")
        sys.stdout.flush()
        await stop.wait()
        logger.info("Termination signal received, stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
