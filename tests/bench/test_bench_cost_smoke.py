"""`make bench-cost` for 30 seconds, so it cannot rot: every policy, both screens.

The real page in Debian's Chromium, a Daphne worker and a stand-in per policy, as the
full run has them. It asserts that each policy produced its figures, and that each
worker stored exactly what its stand-in billed; never how fast or how cheap.
"""

import json
import os
import re
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bench import cost
from tests.conftest import require

LINE = re.compile(
    r"^cost: policy=(?P<policy>[\w-]+) screen=(?P<screen>static|active)"
    r" image_tokens_per_min=(?P<image>\d+) tokens_per_min=(?P<tokens>\d+)"
    r" usd_per_hour=(?P<usd>\d+\.\d{4}) max_change_delay_s=(?P<delay>n/a|\d+\.\d\d|inf)$"
)


@pytest.mark.timeout(600)
def test_every_policy_produces_its_figures_in_a_short_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require(os.path.exists(cost.CHROMIUM), f"{cost.CHROMIUM} is missing (apt-get install chromium)")
    assert (
        cost.main(["--seconds", "30", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")])
        == 0
    )
    lines = [
        LINE.match(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("cost:")
    ]
    assert all(lines), lines
    figures = {(m["policy"], m["screen"]): m for m in lines if m}
    names = [policy.name for policy in cost.POLICIES]
    assert names == [
        "fixed1fps",
        "seed",
        "console",
        "livekit",
        "ours-low",
        "ours-medium",
        "ours-high",
    ]
    assert sorted(figures) == sorted((name, screen) for name in names for screen in cost.SCREENS)
    for (policy, screen), match in figures.items():
        assert int(match["image"]) > 0, (policy, screen)  # the screen was billed
        assert int(match["tokens"]) > int(match["image"]), (policy, screen)  # audio and text too
        assert float(match["usd"]) > 0, (policy, screen)
        assert (match["delay"] == "n/a") == (screen == "static"), (policy, screen)

    for result in json.loads((tmp_path / "r.json").read_text()):
        where = (result["policy"], result["screen"])
        assert result["turns"] >= 1, where  # the spoken questions were answered
        assert result["frames_sent"] >= 1, where
        assert result["total_tokens"] == result["billed_tokens"], where  # stored = billed

    report = (tmp_path / "cost.md").read_text()
    for heading in ("## Targets", "## The static screen", "## The active screen"):
        assert heading in report
    assert (tmp_path / "cost.png").stat().st_size > 0


def marked_frame(change: int, width: int) -> bytes:
    """A JPEG of the screen at ``width`` showing ``change`` in its corner marker."""
    scale = width / cost.cost_screen.VIEWPORT["width"]
    image = Image.new("RGB", (width, round(720 * scale)), "white")
    draw = ImageDraw.Draw(image)
    side = cost.cost_screen.MARKER_PX * scale
    for bit in range(cost.cost_screen.MARKER_BITS):
        if (change >> bit) & 1:
            draw.rectangle([bit * side, 0, (bit + 1) * side - 1, side - 1], fill="black")
    jpeg = BytesIO()
    image.save(jpeg, "JPEG", quality=80)
    return jpeg.getvalue()


@pytest.mark.parametrize("width", [1024, 640])  # the frames of the default and seed policies
def test_a_frame_is_matched_to_the_change_it_shows(width: int) -> None:
    """The marker in a frame's corner is read back: the delays rest on it."""
    assert cost.cost_screen.marker_of(marked_frame(0b10110101, width)) == 0b10110101
    frames = [(9.0, marked_frame(0, width)), (10.4, marked_frame(0, width)),
              (10.9, marked_frame(1, width)), (31.0, marked_frame(3, width))]  # fmt: skip
    changes = [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]
    delays = cost.cost_screen.change_delays(changes, frames)
    # Change 1 shows 0.9 s after it; 2 never showed, but 3 (later) did at 31 s; 4 never.
    assert delays == [pytest.approx(0.9), pytest.approx(11.0), pytest.approx(1.0), None]
