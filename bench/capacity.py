"""The knee: the most concurrent sessions a configuration relays within the latency bound.

A step runs ``n`` sessions for a while (20 s in ``make bench``) and passes when nothing
was lost, every session opened, and the one-way p99 latency is within the bound both up
(browser send to stand-in receipt) and down (stand-in send to browser receipt). The two
ends stamp and time each payload on one clock, so all of that latency is what the path
under test adds.

The search climbs a ramp of sizes until a step fails, then bisects between the last size
that passed and the first that failed, down to a resolution. The knee is the largest size
that passed. If every size of the ramp passed, the knee is at least its last size.

A p99 near the bound is noisy from one 20 s run to the next (the tail of a few hundred
messages), and one unlucky step would end the climb for good. So a size that fails is
run once more, and fails only if it fails again; both runs are reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

P99_BOUND_MS = 20.0
RESOLUTION = 10  # sessions: the bisection stops when pass and fail are this close
CPU_AT = 50  # sessions: where CPU per relayed message is compared


class Level(Protocol):
    """What a step measured (bench.run.LevelResult)."""

    sessions: int
    opened: int
    up_ms: dict[str, float | None]
    down_ms: dict[str, float | None]
    up_lost: int
    down_lost: int
    cpu_us_per_msg: float | None


def verdict(level: Level, bound_ms: float = P99_BOUND_MS) -> str:
    """Empty if the step passed, else why it did not."""
    why = []
    if level.opened < level.sessions:
        why.append(f"opened {level.opened}/{level.sessions}")
    if level.up_lost or level.down_lost:
        why.append(f"lost {level.up_lost}+{level.down_lost}")
    for way, figures in (("up", level.up_ms), ("down", level.down_ms)):
        p99 = figures.get("p99")
        if p99 is None:
            why.append(f"no {way} latency")
        elif p99 > bound_ms:
            why.append(f"{way} p99 {p99:.1f} ms")
    return ", ".join(why)


@dataclass
class Knee:
    """A configuration's search: every step in the order it ran, and the knee."""

    config: str
    bound_ms: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 0
    at_least: bool = False  # every step passed: the knee is beyond the ramp
    cpu_us_per_msg: float | None = None  # at CPU_AT sessions

    def line(self) -> str:
        """The printed figure: ``knee: config=<name> sessions=<n> cpu_us_per_msg=<x>``."""
        cpu = 0.0 if self.cpu_us_per_msg is None else self.cpu_us_per_msg
        more = " (every step passed)" if self.at_least else ""
        return f"knee: config={self.config} sessions={self.sessions} cpu_us_per_msg={cpu:.1f}{more}"


async def search(
    config: str,
    measure: Callable[[int], Awaitable[Level]],
    ramp: Sequence[int],
    *,
    bound_ms: float = P99_BOUND_MS,
    resolution: int = RESOLUTION,
    cpu_at: int = CPU_AT,
    log: Callable[[str], Any] = print,
) -> Knee:
    """Climb ``ramp`` until a step fails, then bisect; ``measure(n)`` runs one step."""
    knee = Knee(config, bound_ms)

    async def step(sessions: int, phase: str) -> bool:
        """Run a size; a failure is confirmed by a second run."""
        return await run(sessions, phase) or await run(sessions, "confirm")

    async def run(sessions: int, phase: str) -> bool:
        level = await measure(sessions)
        why = verdict(level, bound_ms)
        knee.steps.append({
            "sessions": sessions, "phase": phase, "passed": not why, "why": why,
            "up_p99": level.up_ms.get("p99"), "down_p99": level.down_ms.get("p99"),
            "cpu_us_per_msg": level.cpu_us_per_msg,
        })  # fmt: skip
        if sessions == cpu_at and knee.cpu_us_per_msg is None:
            knee.cpu_us_per_msg = level.cpu_us_per_msg
        log(f"knee-step: config={config} sessions={sessions} {why or 'pass'}")
        return not why

    passed, failed = 0, None
    for sessions in sorted(set(ramp)):
        if await step(sessions, "ramp"):
            passed = sessions
        else:
            failed = sessions
            break
    while failed is not None and failed - passed > resolution:
        middle = (passed + failed) // 2
        if await step(middle, "bisect"):
            passed = middle
        else:
            failed = middle
    if knee.cpu_us_per_msg is None and cpu_at not in [s["sessions"] for s in knee.steps]:
        await run(cpu_at, "cpu")  # CPU per message is compared at the same size everywhere
    knee.sessions = passed
    knee.at_least = failed is None
    return knee
