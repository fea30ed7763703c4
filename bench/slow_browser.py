"""A stalled browser beside normal ones: the others' speech latency and the worker's memory.

One Daphne worker (on SQLite, so the machine's databases are left alone) relays ``N``
simulated users (:mod:`bench.loadgen`) while the stand-in speaks to each in real time;
every stamped chunk of model speech is timed from the stand-in to the user. The run is
done twice on the same worker: the ``N`` users alone, then the ``N`` users with one more
that streams like them but reads nothing at all (and so acknowledges nothing) for the
whole run. It prints the normal users' p99 delivery latency both times, the worker's RSS
growth over the stalled run and the speech the server dropped for the stalled user.

The stand-in talks half of the time (3 s on, 3 s off), so a 20 s stall is about 10 s of
speech: the defaults here (a 2 s window, 3 s of room) are small enough that the stalled
user's oldest speech is dropped; with the product's defaults (5 s and 30 s) nothing is::

    python -m bench.slow_browser --sessions 10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench import loadgen, run
from bench.standin_proc import StandInProcess

ROOT = Path(__file__).resolve().parents[1]


class StalledTransport(loadgen.SocketTransport):
    """A share socket that sends like a browser but never reads what the server sends."""

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Nothing, ever: the socket's receive buffers fill and stay full."""
        await asyncio.Event().wait()
        yield "never", None  # pragma: no cover - unreachable, makes this a generator


async def open_all(users: Sequence[loadgen.SimUser]) -> None:
    """Open every user's session; one that fails stops the benchmark."""
    await asyncio.gather(*(user.open() for user in users))


async def normal_p99(
    target: run.SiteTarget, sessions: int, seconds: float, jpeg: bytes, *, stalled: bool
) -> tuple[float | None, int, run.Sampler]:
    """Stream ``sessions`` normal users (and a stalled one); their p99 in ms, the chunks
    timed, and the worker's memory sampler."""
    users = [loadgen.SimUser(i + 1, target.transport(i), jpeg) for i in range(sessions)]
    extra: list[loadgen.SimUser] = []
    if stalled:
        transport = StalledTransport(
            target.ws_url, cookie=target.cookies[sessions], origin=target.base_url
        )
        extra.append(loadgen.SimUser(sessions + 1, transport, jpeg))
    await open_all([*users, *extra])
    sampler = run.Sampler(target.pids)
    sampler.start()
    await asyncio.gather(*(user.stream(seconds) for user in [*users, *extra]))
    await sampler.stop()
    await asyncio.gather(*(user.finish() for user in users))
    for user in extra:  # it reads nothing: no bench-end to wait for, just stop
        await user.transport.close()
    latencies = [ns for user in users for ns in user.result.down_latencies_ns]
    errors = [user.result.error for user in users if user.result.error]
    if errors:
        raise RuntimeError(f"normal sessions failed: {errors[:3]}")
    return run.percentiles(latencies)["p99"], len(latencies), sampler


def speech_dropped_s(database: Path, username: str) -> float:
    """The speech the server dropped for ``username``'s sessions, as stored."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(s.speech_dropped_s), 0) FROM sessions_app_livesession s"
            " JOIN auth_user u ON u.id = s.user_id WHERE u.username = ?",
            (username,),
        ).fetchone()
    return float(row[0])


async def measure(args: argparse.Namespace, workdir: Path) -> str:
    """One run of both phases on one fresh worker; the result line."""
    standin = StandInProcess(workdir / "tls").start()
    settings = {
        "SHARE_DOWNSTREAM_WINDOW_S": str(args.window_s),
        "SHARE_DOWNSTREAM_BUFFER_S": str(args.buffer_s),
        "SHARE_IDLE_TIMEOUT_S": "0",
    }
    run.postgres_url = lambda: None  # SQLite in the work directory: no shared database
    target = run.SiteTarget(standin, workdir, workers=1, extra_env=settings)
    try:
        await asyncio.to_thread(target.setup, args.sessions + 1)
        jpeg = loadgen.make_jpeg()
        alone, timed_alone, _ = await normal_p99(
            target, args.sessions, args.seconds, jpeg, stalled=False
        )
        before = target_rss(target)
        stalled, timed, sampler = await normal_p99(
            target, args.sessions, args.seconds, jpeg, stalled=True
        )
        await asyncio.sleep(1.0)  # the stalled session's row is stored as it ends
        dropped = speech_dropped_s(target.workdir / "bench.sqlite3", f"bench{args.sessions}")
    finally:
        target.teardown()
        standin.stop()
    growth = (sampler.peak - before) / 2**20
    ratio = stalled / alone if alone and stalled else float("nan")
    return (
        f"slow_browser: sessions={args.sessions} p99_ms_alone={alone:.1f}"
        f" p99_ms_with_stalled={stalled:.1f} ratio={ratio:.2f} rss_mb_growth={growth:.1f}"
        f" speech_dropped_s={dropped:.1f} chunks_timed={timed_alone}/{timed}"
    )


def target_rss(target: run.SiteTarget) -> int:
    """The worker's resident memory now."""
    return run.Sampler(target.pids).rss()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the benchmark and print its line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.slow_browser", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase, and the stall")
    parser.add_argument("--window-s", type=float, default=2.0, help="SHARE_DOWNSTREAM_WINDOW_S")
    parser.add_argument("--buffer-s", type=float, default=3.0, help="SHARE_DOWNSTREAM_BUFFER_S")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_site.settings")
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="slow-browser-") as scratch:
        workdir = args.workdir or Path(scratch)
        print(asyncio.run(measure(args, workdir)))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
