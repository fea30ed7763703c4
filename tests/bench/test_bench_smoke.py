"""The benchmark's smoke run: 2 sessions for 5 s in each configuration, so it cannot rot.

Real processes as in `make bench`: the stand-in in its own process, the bare relay, and
the product in a Daphne worker (on the machine's PostgreSQL when it answers). It asserts
what the run delivered, as the receiving ends counted it: every payload the generator
sent reached the stand-in, every chunk of speech the stand-in sent reached a session's
receiver; never how fast.
"""

import asyncio
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bench import loadgen, pinning, report, run
from bench.run import run_all
from bench.standin_proc import BENCH_BEHAVIOUR, Report


@pytest.fixture(autouse=True)
def short_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turns of 0.5 s, 0.5 s apart: every session's phase (at most one period) falls
    inside a level of a few seconds, so every session hears the model speak."""
    monkeypatch.setitem(BENCH_BEHAVIOUR, "bench_talk_s", 0.5)
    monkeypatch.setitem(BENCH_BEHAVIOUR, "bench_silence_s", 0.5)


class Recorded:
    """Each level's result with what the receiving ends counted: the stand-in's report of
    the arrivals, and the simulated users (whose receivers count the model's speech)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.levels: list[tuple[run.LevelResult, Report, list[loadgen.SimUser]]] = []
        self._users: list[loadgen.SimUser] = []
        original_user, original_level = loadgen.SimUser, run.run_level
        recorded = self

        class RecordedUser(original_user):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                recorded._users.append(self)

        async def recording_level(target: Any, standin: Any, *args: Any, **kwargs: Any) -> Any:
            self._users = []
            result = await original_level(target, standin, *args, **kwargs)
            # The arrivals stay in the stand-in until the next level resets them.
            arrivals = await asyncio.to_thread(standin.report)
            self.levels.append((result, arrivals, self._users))
            return result

        monkeypatch.setattr(loadgen, "SimUser", RecordedUser)
        monkeypatch.setattr(run, "run_level", recording_level)


def arrived(report_: Report) -> dict[tuple[int, str], set[int]]:
    """The sequence numbers that reached the stand-in, by (session tag, kind)."""
    seqs: dict[tuple[int, str], set[int]] = defaultdict(set)
    for kind, tag, seq, _latency, _conn, _at in report_.arrivals:
        seqs[(tag, kind)].add(seq)
    return seqs


def check_summaries(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every configuration ran, opened both sessions and lost nothing; by config name."""
    assert data["skipped"] == {}
    by_config = {result["config"]: result for result in data["results"]}
    assert sorted(by_config) == ["bare", "direct", "site", "site-goaway"]
    for name, result in by_config.items():
        assert result["errors"] == [], name
        assert result["opened"] == 2, name
        assert (result["up_lost"], result["down_lost"]) == (0, 0), name
        assert result["up_ms"]["p50"] is not None, name
        assert result["down_ms"]["p50"] is not None, name
    return by_config


def check_user_arrivals(
    level: run.LevelResult, seqs: dict[tuple[int, str], set[int]], user: loadgen.SimUser
) -> None:
    """What one simulated user sent reached the stand-in; what it was sent, it counted."""
    name = level.config
    # Upstream: every audio chunk of the run (100 ms each, in real time) and a
    # frame about every second reached the stand-in, each of them once or more;
    # nothing arrived that was not sent.
    chunks = round(level.seconds / loadgen.CHUNK_S)
    assert seqs[(user.tag, "audio")] == set(range(chunks)), name
    frames = seqs[(user.tag, "frame")]
    assert len(frames) >= level.seconds - 1, name
    for kind, count in user.result.sent.items():
        assert seqs[(user.tag, kind)] == set(range(count)), (name, kind)
    # Downstream: the session's receiver counted the model's speech arriving.
    assert user.result.down_received > 0, name
    assert user.result.ended, name


def check_go_away_hand_over(standin_report: Report, name: str) -> None:
    """The hand-over happened: each session's input reached a second connection."""
    assert len(standin_report.go_aways) >= 2, name
    first_conn: dict[int, int] = {}
    for _kind, tag, _seq, _latency, conn, _at in sorted(
        standin_report.arrivals, key=lambda a: a[5]
    ):
        first_conn.setdefault(tag, conn)
    for tag, conn in first_conn.items():
        assert any(t == tag and c != conn for _k, t, _s, _l, c, _a in standin_report.arrivals), tag


def check_level(
    level: run.LevelResult, standin_report: Report, users: list[loadgen.SimUser]
) -> None:
    """What the receiving ends counted at one level."""
    name = level.config
    seqs = arrived(standin_report)
    assert sorted(user.tag for user in users) == [1, 2], name
    assert {tag for tag, _ in seqs} == {1, 2}, name
    for user in users:
        check_user_arrivals(level, seqs, user)
    # Every stamped chunk of speech the stand-in sent was counted by a receiver.
    assert standin_report.sent_down > 0, name
    assert sum(user.result.down_received for user in users) == standin_report.sent_down
    if name == "site-goaway":
        check_go_away_hand_over(standin_report, name)


def check_site_and_report(
    data: dict[str, Any], by_config: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The site's own measurements, and the report written from the run."""
    site = by_config["site"]
    assert site["worker_cpu_pct"] is not None
    assert site["worker_peak_rss_mb"] > 0
    assert site["wire_binary_per_min"] < site["wire_base64_per_min"]
    assert by_config["site-goaway"]["switch_ms"]["p50"] is not None

    out = tmp_path / "docs" / "benchmarks.md"
    report.write(data, out)
    text = out.read_text()
    for heading in ("## Targets", "## One-way latency and loss", "## goAway hand-over"):
        assert heading in text
    assert (out.parent / "bench-latency.png").stat().st_size > 0
    assert (out.parent / "bench-cpu.png").stat().st_size > 0


@pytest.mark.timeout(300)
def test_two_sessions_for_five_seconds_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = Recorded(monkeypatch)
    data = asyncio.run(
        run_all(
            configs=["direct", "bare", "site"], levels=[2], seconds=5.0,
            workdir=tmp_path / "bench", log=lambda line: None,
        )
    )  # fmt: skip
    by_config = check_summaries(data)

    # What the receiving ends counted, level by level.
    assert sorted(level.config for level, _, _ in recorded.levels) == sorted(by_config)
    for level, standin_report, users in recorded.levels:
        check_level(level, standin_report, users)

    check_site_and_report(data, by_config, tmp_path)


@pytest.mark.timeout(300)
def test_the_metrics_comparison_runs_both_sites_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "METRICS_ROUNDS", 2)
    data = asyncio.run(
        run_all(
            configs=["metrics"], levels=[2], seconds=3.0, workdir=tmp_path / "bench",
            go_away=False, log=lambda line: None,
        )
    )  # fmt: skip
    assert data["skipped"] == {}
    rounds = data["metrics_ab"]
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["sessions"] == 2
        assert r["off_us"] > 0  # each site relayed messages and spent CPU on them
        assert r["on_us"] > 0
        assert r["lost"] == 0
    assert run.metrics_summary(rounds).startswith("metrics: mean overhead_pct=")
    out = tmp_path / "docs" / "benchmarks.md"
    report.write(data, out)
    assert "## What the metrics cost" in out.read_text()


@pytest.mark.timeout(300)
def test_a_short_ramp_on_pinned_cores_loses_nothing_and_reports_the_knee(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = Recorded(monkeypatch)
    plan = pinning.plan()
    lines: list[str] = []
    before = os.sched_getaffinity(0)
    data = asyncio.run(
        run_all(
            configs=["bare", "floor", "site"], levels=[2], ramp=[1, 3], seconds=3.0,
            workdir=tmp_path / "bench", go_away=False, log=lines.append, pinning=plan,
            bound_ms=1e9,  # what is asserted is the search and the loss, never a latency
        )
    )  # fmt: skip
    assert os.sched_getaffinity(0) == before  # the test process is given its cores back
    assert data["skipped"] == {}
    knees = {knee["config"]: knee for knee in data["knees"]}
    assert sorted(knees) == ["bare", "floor", "site"]
    for name, knee in knees.items():
        assert (knee["sessions"], knee["at_least"]) == (3, True), name
        assert [step["sessions"] for step in knee["steps"]] == [1, 3], name
        assert all(step["passed"] for step in knee["steps"]), knee["steps"]
        assert knee["cpu_us_per_msg"] > 0, name  # the relay spent CPU relaying
        assert f"knee: config={name} sessions=3 cpu_us_per_msg=" in "\n".join(lines)

    # Zero loss on every step, as the receiving ends counted it.
    assert [(level.config, level.sessions) for level, _, _ in recorded.levels] == [
        ("bare", 1), ("bare", 3), ("floor", 1), ("floor", 3), ("site", 1), ("site", 3),
    ]  # fmt: skip
    for level, standin_report, users in recorded.levels:
        assert level.opened == level.sessions
        assert (level.up_lost, level.down_lost) == (0, 0), level.config
        seqs = arrived(standin_report)
        for user in users:
            check_user_arrivals(level, seqs, user)
        assert sum(user.result.down_received for user in users) == standin_report.sent_down

    # Each process ran where the plan put it.
    observed = data["pinning"]["observed"]
    if plan.active:
        assert observed["generator"] == observed["stand-in"] == sorted(plan.load)
        assert observed["bare"] == observed["floor"] == observed["site"] == sorted(plan.relay)

    out = tmp_path / "docs" / "benchmarks.md"
    report.write(data, out)
    text = out.read_text()
    assert "## Capacity per core: the knee" in text
    assert "`knee: config=site sessions=3 cpu_us_per_msg=" in text
    assert data["pinning"]["describe"] in text
