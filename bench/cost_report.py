"""docs/cost.md and docs/cost.png from a `make bench-cost` run."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

OURS = "ours-medium"  # the default policy, which the targets are judged on
TARGETS = (("fixed1fps", 0.90), ("console", 0.75))  # static screen: at least this much less
MAX_DELAY_S = 1.5  # active screen: every change reaches the model within this


def reduction(results: Sequence[Any], policy: str, baseline: str, screen: str) -> float | None:
    """How much fewer image tokens ``policy`` billed than ``baseline`` on ``screen`` (0..1)."""
    figures = {r.policy: r.image_tokens_per_min for r in results if r.screen == screen}
    if not figures.get(baseline):
        return None
    return 1 - figures[policy] / figures[baseline]


def targets(results: Sequence[Any]) -> list[str]:
    """The issue's targets, each with the figure this run gave and whether it was met."""
    lines = []
    for baseline, wanted in TARGETS:
        got = reduction(results, OURS, baseline, "static")
        met = got is not None and got >= wanted
        shown = "n/a" if got is None else f"{got:.1%}"
        lines.append(
            f"- Static screen, image tokens billed: {OURS} vs {baseline}: {shown} fewer"
            f" (target: at least {wanted:.0%}): **{'met' if met else 'NOT met'}**"
        )
    delays = {r.policy: r.max_change_delay_s for r in results if r.screen == "active"}
    for policy in ("ours-low", "ours-medium", "ours-high"):
        delay = delays.get(policy)
        met = delay is not None and delay <= MAX_DELAY_S
        lines.append(
            f"- Active screen, longest delay from a change to a frame at the model: {policy}"
            f" {'n/a' if delay is None else f'{delay:.2f} s'} (target: at most"
            f" {MAX_DELAY_S} s): **{'met' if met else 'NOT met'}**"
        )
    return lines


HOW = [
    "Each policy is the product's own page with other settings (`bench/cost.py`, `POLICIES`):"
    " `SHARE_CHANGE_THRESHOLD=0` makes every tick send (the fixed rates), one above 1 sends"
    " keyframes only (LiveKit's rates, as keyframes of 1 s while someone speaks and 3.3 s"
    " while nobody does). Every policy keeps the page's fresh frame when the user starts to"
    " speak, which a fixed rate makes nearly free. The seed tutorial sends only while audio"
    " flows; the page streams the microphone all the time, so that is always.",
    "",
    "## How it is measured",
    "",
    "- Tokens and cost: what each worker stored for its session (the tokens the stand-in"
    " billed turn by turn, summed, times the price table), per minute of the session.",
    "- Frames: what reached the stand-in.",
    "- Change delay (active screen): each change sets an 8-bit marker in the screen's corner;"
    " the delay is from the change to the first frame at the stand-in that shows it (or a"
    " later change), read back from the JPEG.",
    "",
    "Reproduce: `make bench-cost` (a 3-minute session per policy and screen, about 9 minutes"
    ' in all); `make bench-cost BENCH_COST_ARGS="--seconds 60 --screens active'
    ' --policies fixed1fps,ours-medium"` runs a part.',
    "",
]


def table(results: Sequence[Any], screen: str) -> list[str]:
    """One screen's figures, a row per policy."""
    rows = [
        "| policy | frames sent | turns | image tokens billed / min | tokens billed / min"
        " | USD / session-hour | longest change delay (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in results if r.screen == screen):
        delay = r.max_change_delay_s
        rows.append(
            f"| {r.policy} | {r.frames_sent} | {r.turns} | {r.image_tokens_per_min:,.0f}"
            f" | {r.tokens_per_min:,.0f} | {r.usd_per_hour:.4f}"
            f" | {'-' if delay is None else f'{delay:.2f}'} |"
        )
    return rows


def plot(results: Sequence[Any], path: Path) -> None:
    """Image tokens billed per minute and USD per session-hour, per policy and screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(r.policy for r in results))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for offset, screen in ((-width / 2, "static"), (width / 2, "active")):
        by_policy = {r.policy: r for r in results if r.screen == screen}
        if not by_policy:
            continue
        xs = [i + offset for i, p in enumerate(policies) if p in by_policy]
        shown = [by_policy[p] for p in policies if p in by_policy]
        axes[0].bar(xs, [r.image_tokens_per_min for r in shown], width, label=screen)
        axes[1].bar(xs, [r.usd_per_hour for r in shown], width, label=screen)
    for axis, title in zip(axes, ("Image tokens billed per minute", "USD per session-hour"),
                           strict=True):  # fmt: skip
        axis.set_xticks(range(len(policies)), policies, rotation=30, ha="right")
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(results: Sequence[Any], policies: Sequence[Any], out: Path, *, seconds: float) -> Path:
    """Write cost.md (and cost.png) into ``out``; the path of cost.md."""
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "cost.png")
    lines = [
        "# What a session costs, by frame policy",
        "",
        f"`make bench-cost` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {platform.node()},"
        f" {psutil.cpu_count()} cores, Python {platform.python_version()}. Each session ran"
        f" {seconds:g} s on the real share page in headless Chromium, all policies at once,"
        " each against its own worker and its own stand-in, which bills like the service:"
        " every turn bills the whole context again (audio 32 tokens/s, a frame 258 tokens at"
        " the default resolution, 256 at MEDIUM and HIGH, 66 at LOW; text 4 characters a"
        " token). Costs: the default `GEMINI_PRICES` table for gemini-3.8-live. Four spoken"
        " questions per session, each answered with 4 s of speech.",
        "",
        "![Image tokens and cost per policy](cost.png)",
        "",
        "## Targets",
        "",
        *targets(results),
        "",
    ]
    for screen in ("static", "active"):
        lines += [f"## The {screen} screen", "", *table(results, screen), ""]
    lines += ["## The policies", ""]
    lines += [f"- `{p.name}`: {p.description}" for p in policies]
    lines += ["", *HOW]
    path = out / "cost.md"
    path.write_text("\n".join(lines))
    return path
