"""The benchmark's smoke run: 2 sessions for 5 s in each configuration, so it cannot rot.

Real processes as in `make bench`: the stand-in in its own process, the bare relay, and
the product in a Daphne worker (on the machine's PostgreSQL when it answers). It asserts
what the run delivered (every payload, both ways, none lost), never how fast.
"""

import asyncio
from pathlib import Path

import pytest

from bench import report
from bench.run import run_all


@pytest.mark.timeout(300)
def test_two_sessions_for_five_seconds_lose_nothing(tmp_path: Path) -> None:
    data = asyncio.run(
        run_all(
            configs=["direct", "bare", "site"], levels=[2], seconds=5.0,
            workdir=tmp_path / "bench", log=lambda line: None,
        )
    )  # fmt: skip
    assert data["skipped"] == {}
    by_config = {result["config"]: result for result in data["results"]}
    assert sorted(by_config) == ["bare", "direct", "site", "site-goaway"]
    for name, result in by_config.items():
        assert result["errors"] == [], name
        assert result["opened"] == 2, name
        # 50 chunks of audio and about 5 frames a session, plus typed texts.
        assert result["up_sent"] >= 2 * (50 + 4), name
        assert result["down_sent"] > 0, name
        assert (result["up_lost"], result["down_lost"]) == (0, 0), name
        assert result["up_ms"]["p50"] is not None, name
        assert result["down_ms"]["p50"] is not None, name
    site = by_config["site"]
    assert site["worker_cpu_pct"] is not None
    assert site["worker_peak_rss_mb"] > 0
    assert site["wire_binary_per_min"] < site["wire_base64_per_min"]
    # The hand-over happened: each session's input reached a second connection.
    assert by_config["site-goaway"]["switch_ms"]["p50"] is not None

    out = tmp_path / "docs" / "benchmarks.md"
    report.write(data, out)
    text = out.read_text()
    for heading in ("## Targets", "## One-way latency and loss", "## goAway hand-over"):
        assert heading in text
    assert (out.parent / "bench-latency.png").stat().st_size > 0
    assert (out.parent / "bench-cpu.png").stat().st_size > 0
