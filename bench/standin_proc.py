"""The stand-in in a process of its own, driven from the benchmark over a pipe.

Its own process, so that its CPU time is not the relay's and the generator's load does
not delay its timestamps. Commands: ``reset`` (forget the measurements), ``settle`` (collect
its garbage and freeze what lives on, once a level's sessions are open), ``report``
(the probe's arrivals and counts), ``go_away TIME_LEFT`` (on every open connection),
``stop``.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import multiprocessing.connection
import os
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant_site.serve import use_uvloop
from standin import Behaviour, StandIn

BENCH_BEHAVIOUR = {
    "analyse_audio": False,  # no replies to (silent) audio: the model speaks on its own
    "bench_talk_s": 3.0,  # speaks 3 s, then listens 3 s: half the time, like a conversation
    "bench_silence_s": 3.0,
    "bench_phase": True,  # turns fall where each conversation has them, not all at once
    "resumption_updates": True,
}


@dataclass(frozen=True)
class Report:
    """What the stand-in measured since the last reset."""

    arrivals: list[tuple[str, int, int, int, int, int]]  # kind, tag, seq, latency, conn, at
    sent_down: int
    go_aways: list[tuple[int, int]]
    open_connections: int
    connections: int


class StandInProcess:
    """Start, command and stop the stand-in process."""

    def __init__(self, tls_dir: Path, **behaviour: Any) -> None:
        self.tls_dir = tls_dir
        self.behaviour = {**BENCH_BEHAVIOUR, **behaviour}
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_child, args=(child, str(tls_dir), self.behaviour), daemon=True
        )
        self.base_url = ""
        self.ca_path = ""

    def start(self) -> StandInProcess:
        """Start it and wait until it listens."""
        self.process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the stand-in did not start")
        _, self.base_url, self.ca_path = self._conn.recv()
        return self

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the stand-in's CA."""
        return ssl.create_default_context(cafile=self.ca_path)

    def command(self, *command: Any) -> Any:
        """Send a command and return its answer."""
        self._conn.send(command)
        if not self._conn.poll(120):
            raise RuntimeError(f"the stand-in did not answer {command[0]!r}")
        return self._conn.recv()

    def reset(self) -> None:
        self.command("reset")

    def settle(self) -> None:
        """Collect the stand-in's garbage and freeze what lives on (see settle_garbage)."""
        self.command("settle")

    def report(self) -> Report:
        return Report(**self.command("report"))

    def go_away(self, time_left: float) -> int:
        """goAway on every open connection; how many."""
        return int(self.command("go_away", time_left))

    def stop(self) -> None:
        if self.process.is_alive():
            self._conn.send(("stop",))
            self.process.join(15)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def settle_garbage() -> None:
    """Collect now, then keep what is left out of the collector's passes during a level.

    A full collection in a process of the load (the stand-in, the generator) stalls every
    session it serves for tens of milliseconds at 150 sessions, which the figures would
    charge to the relay under test. What lives on from one level to the next (the
    stand-in's connections and ledgers) is frozen, so the passes during a level walk
    only what the level made.
    """
    gc.collect()
    gc.freeze()


def _child(
    conn: multiprocessing.connection.Connection, tls_dir: str, behaviour: dict[str, Any]
) -> None:
    """The process: serve and answer commands."""
    use_uvloop()  # the load runs on uvloop: less of its own delay in the figures
    asyncio.run(_serve(conn, tls_dir, behaviour))


async def _serve(
    conn: multiprocessing.connection.Connection, tls_dir: str, behaviour: dict[str, Any]
) -> None:
    standin = StandIn(
        behaviour=Behaviour(**behaviour), tls_dir=tls_dir, record_limit_bytes=0,
        keep_closed_records=0,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    async with standin:
        conn.send(("ready", standin.base_url, str(standin.ca_path)))

        def on_command() -> None:
            try:
                commands.put_nowait(conn.recv())
            except (EOFError, OSError):  # the benchmark is gone: stop, rather than spin
                loop.remove_reader(conn.fileno())
                commands.put_nowait(("stop",))

        loop.add_reader(conn.fileno(), on_command)
        # uvloop makes a watched descriptor non-blocking; the pipe's sends (a report of
        # many arrivals) must block until the other end has read them.
        os.set_blocking(conn.fileno(), True)
        while True:
            name, *args = await commands.get()
            if name == "stop":
                break
            if name == "reset":
                standin.probe.reset()
                conn.send("ok")
            elif name == "settle":
                settle_garbage()
                conn.send("ok")
            elif name == "report":
                conn.send(_report(standin))
            elif name == "go_away":
                live = [r.index for r in standin.connections if not r.closed and r.setup]
                for index in live:
                    await standin.go_away(float(args[0]), connection=index)
                conn.send(len(live))
        loop.remove_reader(conn.fileno())


def _report(standin: StandIn) -> dict[str, Any]:
    probe = standin.probe
    return asdict(
        Report(
            arrivals=[
                (a.kind, a.tag, a.seq, a.latency_ns, a.connection, a.at_ns) for a in probe.arrivals
            ],
            sent_down=sum(probe.sent_down.values()),
            go_aways=list(probe.go_aways),
            open_connections=sum(1 for r in standin.connections if not r.closed),
            connections=len(standin.connections),
        )
    )
