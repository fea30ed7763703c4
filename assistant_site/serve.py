"""Daphne on uvloop: ``python -m assistant_site.serve`` takes Daphne's own arguments.

Daphne makes its event loop (``asyncio.new_event_loop()``, under Twisted's asyncio
reactor) when ``daphne.server`` is first imported, so the loop policy is set here, before
that import. On one pinned core at 150 sessions uvloop took the relay's p99 up latency
from about 50 ms to about 30 ms and its CPU per message down by about 3%
(docs/benchmarks.md). ``DAPHNE_UVLOOP=0``, or uvloop not installed, keeps asyncio's loop.
"""

import asyncio
import os


def use_uvloop() -> bool:
    """Set uvloop's loop policy unless DAPHNE_UVLOOP=0; whether it is in use."""
    if os.environ.get("DAPHNE_UVLOOP", "1") == "0":
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def main() -> None:
    """Run Daphne's command line with the chosen loop."""
    use_uvloop()
    from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
