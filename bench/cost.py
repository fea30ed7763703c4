"""`make bench-cost`: what a session costs under each frame policy, on the real share page.

Headless Chromium (Debian's) opens the real share page once per policy, all at the same
time, each against its own Daphne worker (its own SQLite database) and its own Gemini
Live stand-in, which bills like the service (standin/billing.py). The page shares its own
tab, covered by a document (:mod:`bench.cost_screen`): a ``static`` one, then an
``active`` one that scrolls or gets a typed line every few seconds. The fake microphone
asks a few spoken questions; the stand-in answers each. Every policy is the product's own
page with other settings:

- ``fixed1fps``: every tick sends a frame, one a second, at the service's default resolution;
- ``seed``: the seed tutorial: a 640-px frame every 3 s while audio flows (the page's
  microphone streams all the time, so always);
- ``console``: the official console: a frame every 2 s;
- ``livekit``: LiveKit's agents: 1 frame/s while someone speaks, about 0.3 while silent;
- ``ours-low``, ``ours-medium``, ``ours-high``: the defaults (change detection, keyframes
  every 10 s while someone speaks and 60 s while nobody does, a fresh frame with each
  question) at each media resolution.

Every page also sends a fresh frame when the user starts to speak (the product's refresh,
which a fixed rate makes nearly free). For each policy and screen it prints
``cost: policy=... screen=... image_tokens_per_min=... tokens_per_min=... usd_per_hour=...
max_change_delay_s=...`` and writes docs/cost.md with a plot (:mod:`bench.cost_report`).

    python -m bench.cost --seconds 180
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import cost_report, cost_screen
from bench.screenshots import prepare_database, started_daphne, wait_for
from standin import Behaviour, ThreadedStandIn

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "bench", "bench-pass-123"
SCREENS = ("static", "active")
SHARE_THIS_TAB = """
const original = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getDisplayMedia = (options) =>
  original({...options, preferCurrentTab: true});
"""
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--auto-accept-this-tab-capture", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]  # fmt: skip
DEFAULT_RESOLUTION = {"GEMINI_MEDIA_RESOLUTION": ""}  # not sent: the service's ~258 a frame


@dataclass(frozen=True)
class Policy:
    """A frame policy: the page's settings that make it."""

    name: str
    description: str
    env: dict[str, str]


POLICIES = (
    Policy("fixed1fps", "a frame every second", {
        "SHARE_FRAME_RATE": "1", "SHARE_CHANGE_THRESHOLD": "0", **DEFAULT_RESOLUTION}),
    Policy("seed", "a 640-px frame every 3 s while audio flows", {
        "SHARE_FRAME_RATE": "0.3333", "SHARE_CHANGE_THRESHOLD": "0",
        "SHARE_FRAME_MAX_SIDE": "640", **DEFAULT_RESOLUTION}),
    Policy("console", "a frame every 2 s", {
        "SHARE_FRAME_RATE": "0.5", "SHARE_CHANGE_THRESHOLD": "0", **DEFAULT_RESOLUTION}),
    Policy("livekit", "1 frame/s while someone speaks, ~0.3 while silent", {
        "SHARE_FRAME_RATE": "2", "SHARE_CHANGE_THRESHOLD": "2", "SHARE_KEYFRAME_S": "1",
        "SHARE_IDLE_KEYFRAME_S": "3.3", **DEFAULT_RESOLUTION}),
    Policy("ours-low", "changes, keyframes 10 s / 60 s idle, LOW", {
        "GEMINI_MEDIA_RESOLUTION": "LOW"}),
    Policy("ours-medium", "changes, keyframes 10 s / 60 s idle, MEDIUM (default)", {
        "GEMINI_MEDIA_RESOLUTION": "MEDIUM"}),
    Policy("ours-high", "changes, keyframes 10 s / 60 s idle, HIGH", {
        "GEMINI_MEDIA_RESOLUTION": "HIGH"}),
)  # fmt: skip


@dataclass
class Result:
    """The figures of one policy on one screen."""

    policy: str
    screen: str
    seconds: float
    frames_sent: int
    turns: int
    image_tokens: int
    total_tokens: int
    cost_usd: float
    billed_tokens: int  # what the stand-in's usage reports add up to, for the stored total
    change_delays_s: list[float | None] = field(default_factory=list)

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @property
    def image_tokens_per_min(self) -> float:
        return self.image_tokens / self.minutes

    @property
    def tokens_per_min(self) -> float:
        return self.total_tokens / self.minutes

    @property
    def usd_per_hour(self) -> float:
        return self.cost_usd / self.minutes * 60

    @property
    def max_change_delay_s(self) -> float | None:
        """The longest delay of a change (None without changes; inf if one never came)."""
        if not self.change_delays_s:
            return None
        return max(float("inf") if d is None else d for d in self.change_delays_s)

    def line(self) -> str:
        delay = self.max_change_delay_s
        return (
            f"cost: policy={self.policy} screen={self.screen}"
            f" image_tokens_per_min={self.image_tokens_per_min:.0f}"
            f" tokens_per_min={self.tokens_per_min:.0f} usd_per_hour={self.usd_per_hour:.4f}"
            f" max_change_delay_s={'n/a' if delay is None else f'{delay:.2f}'}"
        )


@dataclass
class Lane:
    """One policy's stand-in, worker and page for one screen."""

    policy: Policy
    standin: ThreadedStandIn
    url: str
    database: Path
    page: Any = None
    started_at: float = 0.0
    changes: list[tuple[int, float]] = field(default_factory=list)


def site_env(database: Path, standin: ThreadedStandIn, policy: Policy) -> dict[str, str]:
    """The environment of one policy's worker."""
    return {
        **os.environ,
        "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SERVE_STATIC": "1",
        "DJANGO_SSL_REDIRECT": "0", "DJANGO_SECURE_COOKIES": "0", "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": "", "GEMINI_OFFLINE_DEMO": "0",
        "GEMINI_API_KEY": "bench-cost-key-not-secret", "GEMINI_API_BASE_URL": standin.base_url,
        "GEMINI_CA_BUNDLE": str(standin.ca_path), "SHARE_MAX_SESSION_S": "0",
        "SHARE_IDLE_TIMEOUT_S": "0", "SHARE_MAX_SESSIONS_PER_USER": "0",
        **policy.env,
    }  # fmt: skip


def template_database(workdir: Path) -> Path:
    """A migrated SQLite database with the bench user, copied for every worker."""
    database = workdir / "template.sqlite3"
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": f"sqlite:///{database}",
           "REDIS_URL": "", "GEMINI_OFFLINE_DEMO": "1"}  # fmt: skip
    prepare_database(env, USER, PASSWORD, admin=False)
    return database


def bench_behaviour() -> Behaviour:
    """The stand-in's model: answers each question with four seconds of speech."""
    return Behaviour(reply_audio_s=4.0, reply_delay_s=0.3, chunk_interval_s=0.05, speech_gap_s=0.6)


@contextmanager
def lanes(
    workdir: Path, template: Path, screen: str, policies: Sequence[Policy]
) -> Iterator[list[Lane]]:
    """A stand-in and a worker (with a fresh copy of the database) for every policy."""
    with ExitStack() as stack:
        started, processes = [], []
        for policy in policies:
            standin = stack.enter_context(
                ThreadedStandIn(behaviour=bench_behaviour(), tls_dir=workdir / "tls",
                                record_limit_bytes=None, keep_closed_records=None)
            )  # fmt: skip
            database = workdir / f"{screen}-{policy.name}.sqlite3"
            shutil.copy(template, database)
            env = site_env(database, standin, policy)
            url, process = stack.enter_context(
                started_daphne(env, workdir / f"{screen}-{policy.name}.log")
            )
            started.append(Lane(policy, standin, url, database))
            processes.append(process)
        for lane, process in zip(started, processes, strict=True):  # started together
            wait_for(f"{lane.url}/accounts/login/", process, timeout=60)
        yield started


def open_page(browser: Any, lane: Lane) -> None:
    """Log in on the lane's worker and leave the share page ready to start."""
    context = browser.new_context(viewport=cost_screen.VIEWPORT, permissions=["microphone"])
    context.add_init_script(SHARE_THIS_TAB)
    page = context.new_page()
    page.goto(f"{lane.url}/accounts/login/")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("login").click()
    page.wait_for_url(f"{lane.url}/")
    page.evaluate(cost_screen.SCREEN_JS)  # the screen is the document from the first frame on
    page.evaluate("(p) => window.benchScreen.install(p)", cost_screen.PARAGRAPH)
    lane.page = page


def poll(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """Wait until a JavaScript expression is truthy in the page (the CSP forbids eval)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} still false after {timeout} s")
        time.sleep(0.1)
    return value


def start_sessions(lanes_: list[Lane]) -> None:
    """Start every lane's session at once (voice replies)."""
    for lane in lanes_:
        lane.page.get_by_test_id("start").click()
    for lane in lanes_:
        poll(lane.page, "document.querySelector('[data-testid=status]').dataset.state === 'live'")
        lane.started_at = time.time()
        # Under the document nothing shows; hidden, the page's own updates (level meter,
        # stats, preview) cost no painting, so seven pages fit on two cores.
        lane.page.evaluate("window.benchScreen.hidePage()")


def run_screen(lanes_: list[Lane], screen: str, seconds: float) -> None:
    """Let the sessions run ``seconds``; on the active screen, change it every few seconds."""
    start = time.monotonic()
    due = cost_screen.change_times(seconds) if screen == "active" else []
    while time.monotonic() - start < seconds:
        if due and time.monotonic() - start >= due[0]:
            due.pop(0)
            index = len(lanes_[0].changes) + 1
            for lane in lanes_:
                made = lane.page.evaluate(f"window.benchScreen.change({index})")
                lane.changes.append((index, made / 1000))
        time.sleep(0.02)
    for lane in lanes_:
        lane.page.evaluate("window.sharePage.stop()")
    for lane in lanes_:
        poll(lane.page, "document.querySelector('[data-testid=status]').dataset.state === 'ended'")


def stored_session(database: Path) -> dict[str, Any]:
    """The session's row as the worker stored it: tokens, their modalities, cost, times."""
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT status, started_at, ended_at, total_tokens, prompt_tokens_by_modality,"
            " cost_usd FROM sessions_app_livesession"
        ).fetchone()
    return dict(row)


def result_of(lane: Lane, screen: str) -> Result:
    """The lane's figures: the stored bill, and what reached the stand-in and when."""
    row = stored_session(lane.database)
    records = [c for c in lane.standin.connections if c.setup is not None]
    frames = [
        (at, data)
        for record in records
        for at, (_, data) in zip(record.frame_arrivals, record.frames, strict=True)
    ]
    length = datetime.fromisoformat(row["ended_at"]) - datetime.fromisoformat(row["started_at"])
    usage = [report for record in records for report in record.usage]
    return Result(
        policy=lane.policy.name,
        screen=screen,
        seconds=max(length.total_seconds(), 1.0),
        frames_sent=len(frames),
        turns=len(usage),
        image_tokens=int(json.loads(row["prompt_tokens_by_modality"]).get("IMAGE", 0)),
        total_tokens=int(row["total_tokens"]),
        cost_usd=float(row["cost_usd"] or 0),
        billed_tokens=sum(int(report.get("totalTokenCount", 0)) for report in usage),
        change_delays_s=cost_screen.change_delays(lane.changes, frames),
    )


def run(
    seconds: float, workdir: Path, screens: Sequence[str] = SCREENS,
    policies: Sequence[Policy] = POLICIES,
) -> list[Result]:  # fmt: skip
    """Each screen in turn, every policy at once on it; the results in policy order."""
    from playwright.sync_api import sync_playwright

    wav = cost_screen.write_questions_wav(workdir / "questions.wav", seconds)
    template = template_database(workdir)
    results: list[Result] = []
    with sync_playwright() as playwright:
        for screen in screens:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
            )  # fmt: skip
            with lanes(workdir, template, screen, policies) as started:
                for lane in started:
                    open_page(browser, lane)
                start_sessions(started)
                run_screen(started, screen, seconds)
                results += [result_of(lane, screen) for lane in started]
            browser.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="length of each session")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="cost.md and its plot")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--screens", default=",".join(SCREENS), help="static and/or active")
    names = ",".join(p.name for p in POLICIES)
    parser.add_argument("--policies", default=names, help=f"a subset of {names}")
    args = parser.parse_args(argv)
    wanted = args.policies.split(",")
    policies = [p for p in POLICIES if p.name in wanted]
    screens = [s for s in SCREENS if s in args.screens.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        results = run(args.seconds, Path(tmp), screens, policies)
    for result in results:
        print(result.line())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    cost_report.write(results, POLICIES, args.out, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
