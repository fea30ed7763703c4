"""Which cores the benchmark's processes run on.

On a machine with two cores or more the relay under test (a Daphne worker, the bare
relay, nginx in front of workers) gets one core to itself, and everything that makes the
load (the stand-in and the load generator, which is this process) gets another one, so
that the relay is not starved by its own load: what a level measures is the relay.

``os.sched_setaffinity`` pins one thread, and threads inherit their creator's mask, so
:func:`pin` sets every thread a process already has, and its children's.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class Pinning:
    """The core of the relay under test and the cores of the load; empty: not pinned."""

    relay: frozenset[int] = field(default_factory=frozenset)
    load: frozenset[int] = field(default_factory=frozenset)
    why_not: str = ""

    @property
    def active(self) -> bool:
        return bool(self.relay)

    def describe(self) -> str:
        """One line for the report."""
        if not self.active:
            return f"not pinned ({self.why_not})"
        return (
            f"the relay under test on core {_cores(self.relay)}; the stand-in and the load"
            f" generator on core {_cores(self.load)} (os.sched_setaffinity)"
        )

    def as_dict(self) -> dict[str, object]:
        return {"relay": sorted(self.relay), "load": sorted(self.load), "why_not": self.why_not}


def plan(enabled: bool = True) -> Pinning:
    """One core for the relay, one for the load, from the cores this process may use."""
    if not enabled:
        return Pinning(why_not="--no-pin")
    if not hasattr(os, "sched_setaffinity"):
        return Pinning(why_not="this system has no sched_setaffinity")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Pinning(why_not=f"only {len(cores)} core available")
    return Pinning(relay=frozenset(cores[:1]), load=frozenset(cores[1:2]))


def pin(pid: int, cores: frozenset[int] | set[int], *, children: bool = True) -> None:
    """Pin every thread of ``pid`` (and of its children) to ``cores`` (nothing if empty)."""
    if not cores:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        for proc in [process, *(process.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.NoSuchProcess):
                for thread in proc.threads():
                    with contextlib.suppress(ProcessLookupError):
                        os.sched_setaffinity(thread.id, set(cores))


def cores_of(pid: int) -> set[int]:
    """The cores ``pid``'s main thread may run on."""
    return set(os.sched_getaffinity(pid))


def _cores(cores: frozenset[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))
