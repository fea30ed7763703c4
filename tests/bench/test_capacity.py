"""The knee search (bench/capacity.py), the pinning (bench/pinning.py) and the generator's
byte count, without running a load: each step is a made-up result."""

import asyncio
import base64
import json
import os
from dataclasses import dataclass, field

import pytest

from bench import capacity, pinning
from bench.loadgen import base64_json_size


@dataclass
class Step:
    """A step's figures, as bench.run.LevelResult has them."""

    sessions: int
    opened: int = 0
    up_ms: dict[str, float | None] = field(default_factory=dict)
    down_ms: dict[str, float | None] = field(default_factory=dict)
    up_lost: int = 0
    down_lost: int = 0
    cpu_us_per_msg: float | None = None


def machine_with_knee(knee: int, lose_at: int | None = None) -> tuple[list[int], object]:
    """A fake measure: p99 under the bound up to ``knee`` sessions, over it beyond;
    messages lost from ``lose_at`` sessions on. Records the sizes asked for."""
    asked: list[int] = []

    async def measure(sessions: int) -> Step:
        asked.append(sessions)
        p99 = 5.0 if sessions <= knee else 35.0
        lost = 1 if lose_at is not None and sessions >= lose_at else 0
        return Step(
            sessions, opened=sessions, up_ms={"p99": p99}, down_ms={"p99": p99 / 2},
            up_lost=lost, cpu_us_per_msg=1000.0 / sessions,
        )  # fmt: skip

    return asked, measure


def search(measure: object, ramp: list[int], **kwargs: object) -> capacity.Knee:
    logged: list[str] = []
    knee = asyncio.run(
        capacity.search("site", measure, ramp, log=logged.append, **kwargs)  # type: ignore[arg-type]
    )
    assert len(logged) == len(knee.steps)  # one line per step
    return knee


def test_the_ramp_climbs_until_a_step_fails_then_bisects_to_the_resolution() -> None:
    asked, measure = machine_with_knee(137)
    knee = search(measure, [25, 50, 100, 150, 200], resolution=5)
    assert asked == [25, 50, 100, 150, 150, 125, 137, 143, 143, 140, 140]
    assert knee.sessions == 137
    assert not knee.at_least
    assert [step["phase"] for step in knee.steps] == [
        "ramp", "ramp", "ramp", "ramp", "confirm",
        "bisect", "bisect", "bisect", "confirm", "bisect", "confirm",
    ]  # fmt: skip
    assert knee.steps[3]["why"] == "up p99 35.0 ms"  # down 17.5 ms is within the bound
    assert knee.cpu_us_per_msg == pytest.approx(1000.0 / 50)  # measured at 50 sessions
    assert knee.line() == "knee: config=site sessions=137 cpu_us_per_msg=20.0"


def test_a_loss_fails_a_step_whatever_its_latency() -> None:
    asked, measure = machine_with_knee(10_000, lose_at=60)
    knee = search(measure, [25, 50, 100], resolution=10)
    assert knee.sessions == 56
    assert asked == [25, 50, 100, 100, 75, 75, 62, 62, 56]
    assert knee.steps[2]["why"] == "lost 1+0"


def test_every_step_passing_gives_the_last_size_as_a_lower_bound() -> None:
    asked, measure = machine_with_knee(10_000)
    knee = search(measure, [1, 2, 3], cpu_at=3)
    assert asked == [1, 2, 3]
    assert (knee.sessions, knee.at_least) == (3, True)
    assert knee.line().endswith("(every step passed)")


def test_a_failing_first_step_gives_no_knee_and_cpu_is_still_measured() -> None:
    asked, measure = machine_with_knee(0)
    knee = search(measure, [25, 100], resolution=30)
    assert knee.sessions == 0
    assert asked == [25, 25, 50]  # 25 is within 30 of 0: no bisection; then CPU at 50
    assert knee.cpu_us_per_msg is not None


def test_a_step_that_fails_once_is_run_again_and_the_climb_goes_on_if_it_passes() -> None:
    asked, steady = machine_with_knee(137)
    unlucky = {100}

    async def measure(sessions: int) -> Step:
        step = await steady(sessions)  # type: ignore[operator]
        if sessions in unlucky:  # a noisy tail, the first time only
            unlucky.discard(sessions)
            step.up_ms = {"p99": 21.0}
        return step

    knee = search(measure, [50, 100, 150], resolution=5)
    assert asked[:4] == [50, 100, 100, 150]
    assert [(s["sessions"], s["phase"], s["passed"]) for s in knee.steps[:3]] == [
        (50, "ramp", True), (100, "ramp", False), (100, "confirm", True),
    ]  # fmt: skip
    assert knee.sessions == 137


def test_sessions_that_did_not_open_fail_the_step() -> None:
    step = Step(10, opened=9, up_ms={"p99": 1.0}, down_ms={"p99": None})
    assert capacity.verdict(step) == "opened 9/10, no down latency"


def test_the_plan_gives_the_relay_and_the_load_a_core_each() -> None:
    cores = sorted(os.sched_getaffinity(0))
    plan = pinning.plan()
    if len(cores) < 2:
        assert not plan.active
        return
    assert plan.relay == {cores[0]}
    assert plan.load == {cores[1]}
    assert not plan.relay & plan.load
    assert not pinning.plan(enabled=False).active


def test_pin_moves_every_thread_of_a_process() -> None:
    import subprocess
    import sys

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("pinning needs two cores")
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import threading, time; [threading.Thread(target=time.sleep, args=(30,), daemon=True)"
         ".start() for _ in range(3)]; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith(b"up")
        pinning.pin(child.pid, frozenset(cores[1:2]))
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert len(threads) >= 4
        for tid in threads:
            assert os.sched_getaffinity(int(tid)) == {cores[1]}, tid
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 3200, 60_001])
def test_the_base64_size_is_counted_as_encoding_would_make_it(size: int) -> None:
    payload = os.urandom(size)
    encoded = json.dumps({"type": "frame", "data": base64.b64encode(payload).decode()})
    assert base64_json_size("frame", payload) == len(encoded)
    assert base64_json_size("frame", size) == len(encoded)
