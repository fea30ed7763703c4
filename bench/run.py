"""`make bench`: relay latency, loss, CPU and memory against the floor and a bare relay.

One stand-in process serves every configuration of one run:

- ``direct``: the generator's sessions use the google-genai SDK with no relay (the floor);
- ``bare``: the minimal websockets relay of bench/bare_relay.py;
- ``site``: the product, one Daphne worker (Channels consumer, persistence);
- ``metrics``: what the Prometheus metrics cost the relay: two single-worker sites at
  once, metrics off and on (``METRICS_TOKEN`` set), each carrying half of the sessions,
  in rounds that swap which half goes where; the figure is worker CPU per relayed
  message (:func:`run_metrics_ab`);
- ``site2``: the product, two Daphne workers behind nginx (deploy/nginx.conf) on the
  Redis channel layer and PostgreSQL.

For each number of concurrent sessions, every session streams for ``--seconds`` (audio
in real time, a frame a second, a text now and then) while the stand-in speaks half of
the time; then the figures are taken. A goAway scenario times the hand-over. Results go
to a JSON file, and :mod:`bench.report` writes docs/benchmarks.md with plots.

    python -m bench.run --sessions 1,10,50,100,200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from assistant_site.serve import use_uvloop
from bench import capacity, loadgen
from bench.pinning import Pinning, cores_of, pin, plan
from bench.standin_proc import Report, StandInProcess, settle_garbage

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gemini-3.8-live"
PASSWORD = "bench-password-" + "x" * 8
OPEN_CONCURRENCY = 25
SAMPLE_S = 0.25
CONFIGS = ("direct", "bare", "floor", "site", "metrics", "site2")
KNEE_CONFIGS = ("direct", "bare", "floor", "site")  # searched for their knee when a ramp is given
RAMP = (1, 10, 25, 50, 100, 150, 200, 300, 400)  # sessions, before the bisection
METRICS_ROUNDS = 4  # rounds of the metrics comparison (each swaps the halves)
METRICS_SESSIONS = 50  # at most, split over the two workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values_ns: Sequence[int]) -> dict[str, float | None]:
    """p50, p95, p99, max and mean in ms."""
    if not values_ns:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] / 1e6

    return {
        "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1] / 1e6,
        "mean": sum(ordered) / len(ordered) / 1e6,
    }  # fmt: skip


@dataclass
class LevelResult:
    """The figures of one configuration at one number of sessions."""

    config: str
    sessions: int
    seconds: float
    opened: int = 0
    up_ms: dict[str, float | None] = field(default_factory=dict)
    up_by_kind_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    down_ms: dict[str, float | None] = field(default_factory=dict)
    up_sent: int = 0
    up_lost: int = 0
    up_duplicates: int = 0
    down_sent: int = 0
    down_lost: int = 0
    worker_cpu_pct: float | None = None
    cpu_us_per_msg: float | None = None  # relay CPU time / messages relayed (both ways)
    worker_peak_rss_mb: float | None = None
    worker_base_rss_mb: float | None = None
    mem_per_session_mb: float | None = None
    standin_cpu_pct: float = 0.0
    generator_cpu_pct: float = 0.0
    start_ms: dict[str, float | None] = field(default_factory=dict)
    wire_binary_per_min: float = 0.0
    wire_base64_per_min: float = 0.0
    errors: list[str] = field(default_factory=list)
    switch_ms: dict[str, float | None] | None = None


class Sampler:
    """CPU times and peak RSS of some processes while a load runs."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self.cpu_seconds = 0.0  # of all the processes, over the last start..stop
        self._task: asyncio.Task[None] | None = None
        self._cpu0: list[float] = []
        self._t0 = 0.0

    def rss(self) -> int:
        return sum(proc.memory_info().rss for proc in self.procs)

    def start(self) -> None:
        self._cpu0 = [self._cpu(proc) for proc in self.procs]
        self._t0 = time.monotonic()
        self.peak = self.rss()
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> list[float]:
        """CPU % of each process over the run."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak = max(self.peak, self.rss())
        wall = time.monotonic() - self._t0
        self.cpu_seconds = sum(
            self._cpu(proc) - before for proc, before in zip(self.procs, self._cpu0, strict=True)
        )
        return [
            100 * (self._cpu(proc) - before) / wall
            for proc, before in zip(self.procs, self._cpu0, strict=True)
        ]

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.peak = max(self.peak, self.rss())

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)


class Target:
    """One configuration under test."""

    name = ""

    def __init__(self, standin: StandInProcess, workdir: Path) -> None:
        self.standin, self.workdir = standin, workdir
        self.idle_rss: int | None = None

    def setup(self, users: int) -> None:
        """Start what the configuration needs for up to ``users`` sessions."""

    def transport(self, index: int) -> loadgen.Transport:
        raise NotImplementedError

    @property
    def pids(self) -> list[int]:
        """The relay's processes (none for direct), whose CPU and memory are measured."""
        return []

    @property
    def relay_pids(self) -> list[int]:
        """Every process between the generator and the stand-in (pinned to the relay's core)."""
        return self.pids

    def teardown(self) -> None:
        """Stop what setup started."""


class DirectTarget(Target):
    name = "direct"

    def transport(self, index: int) -> loadgen.Transport:
        return loadgen.DirectTransport(self.standin.base_url, self.standin.ssl_context(), MODEL)


class BareTarget(Target):
    name = "bare"

    def setup(self, users: int) -> None:
        self.port = free_port()
        self.log = (self.workdir / "bare-relay.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_relay", "--port", str(self.port),
             "--base-url", self.standin.base_url, "--ca", self.standin.ca_path],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"the bare relay did not start: {line!r}")

    def transport(self, index: int) -> loadgen.Transport:
        return loadgen.SocketTransport(f"ws://127.0.0.1:{self.port}/")

    @property
    def pids(self) -> list[int]:
        return [self.process.pid]

    def teardown(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class FloorTarget(BareTarget):
    """The bare relay's work in a Channels consumer under Daphne (bench/floor_relay.py)."""

    name = "floor"

    def setup(self, users: int) -> None:
        self.port = free_port()
        self.log = (self.workdir / "floor-relay.log").open("wb")
        env = {
            **os.environ, "FLOOR_BASE_URL": self.standin.base_url,
            "FLOOR_CA": self.standin.ca_path, "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        env.pop("DJANGO_SETTINGS_MODULE", None)  # its own settings: none of the product's
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant_site.serve", "-b", "127.0.0.1",
             "-p", str(self.port), "bench.floor_relay:application"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_listening(self.port, self.process)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until ``port`` accepts connections; raise if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the relay exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:g} s")


# The benchmark's users, and a logged-in session cookie for each, minted as Django's test
# client does: hashing a password for each login would take minutes for hundreds of users.
MINT_SESSIONS = """
import json
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

User = get_user_model()
hashed = make_password({password!r})
names = [f"bench{{i}}" for i in range({users})]
User.objects.bulk_create([User(username=n, password=hashed) for n in names], ignore_conflicts=True)
keys = []
for user in sorted(User.objects.filter(username__in=names), key=lambda u: names.index(u.username)):
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    keys.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
print(json.dumps([settings.SESSION_COOKIE_NAME, keys]))
"""


def postgres_url() -> str | None:
    """A fresh benchmark database on the machine's PostgreSQL, if it answers."""
    base = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    try:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_assistant WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_assistant")
    except Exception:  # noqa: BLE001 - no PostgreSQL: the caller falls back or skips
        return None
    return f"{base}/bench_assistant"


def redis_url() -> str | None:
    """The machine's Redis, if it answers."""
    url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return None
    except OSError:
        return None
    return url


class SiteTarget(Target):
    """The product: Daphne workers (behind nginx when more than one)."""

    def __init__(
        self, standin: StandInProcess, workdir: Path, *, workers: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(standin, workdir / f"site{workers}")
        self.extra_env = extra_env or {}
        self.name = "site" if workers == 1 else f"site{workers}"
        self.worker_count = workers
        self.workers: list[Any] = []
        self.nginx: Any = None
        self.cookies: list[str] = []

    def env(self) -> dict[str, str]:
        database = postgres_url()
        if database is None:
            if self.worker_count > 1:
                raise RuntimeError("two workers need PostgreSQL (BENCH_POSTGRES)")
            database = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "GEMINI_", "SHARE_", "DATABASE_URL", "REDIS_URL"))
        }  # fmt: skip
        env.update(
            DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", DJANGO_SSL_REDIRECT="0",
            DJANGO_SECURE_COOKIES="0", DJANGO_HSTS_SECONDS="0", DATABASE_URL=database,
            GEMINI_API_KEY="bench-" + secrets.token_hex(8), GEMINI_MODEL=MODEL,
            GEMINI_API_BASE_URL=self.standin.base_url, GEMINI_CA_BUNDLE=self.standin.ca_path,
            SHARE_MAX_SESSIONS_PER_WORKER="0", PYTHONUNBUFFERED="1",
        )  # fmt: skip
        if self.worker_count > 1:
            redis = redis_url()
            if redis is None:
                raise RuntimeError("two workers need Redis (BENCH_REDIS)")
            env.update(
                REDIS_URL=redis, CHANNELS_PREFIX=f"bench-{secrets.token_hex(4)}",
                DJANGO_TRUSTED_PROXY_COUNT="1",
            )  # fmt: skip
        env.update(self.extra_env)
        return env

    def setup(self, users: int) -> None:
        from tests.processes import DaphneWorker

        self.workdir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        # The users, and a logged-in session cookie for each, minted as Django's test
        # client does (hashing a password per login would take minutes for hundreds).
        script = MINT_SESSIONS.format(users=users, password=PASSWORD)
        minted = subprocess.run(
            [*manage, "shell", "-c", script], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True,
        )  # fmt: skip
        cookie_name, sessions = json.loads(minted.stdout.strip().splitlines()[-1])
        for number in range(self.worker_count):
            worker = DaphneWorker(f"web{number + 1}", env, self.workdir / f"web{number + 1}.log")
            self.workers.append(worker.start())
        base = self.workers[0].url
        if self.worker_count > 1:
            self.nginx = _nginx(self.workdir / "nginx", self.workers)
            base = self.nginx.url
        self.base_url = base
        self.ws_url = base.replace("http://", "ws://") + "/ws/share/"
        self.cookies = [f"{cookie_name}={key}" for key in sessions]

    def transport(self, index: int) -> loadgen.Transport:
        return loadgen.SocketTransport(
            self.ws_url, cookie=self.cookies[index], origin=self.base_url
        )

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self.workers]

    @property
    def relay_pids(self) -> list[int]:
        nginx = [self.nginx.process.pid] if self.nginx is not None else []
        return [*self.pids, *nginx]

    def teardown(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for worker in self.workers:
            worker.stop()


def _nginx(workdir: Path, workers: list[Any]) -> Any:
    """Debian's nginx with deploy/nginx.conf in front of ``workers`` (as tests/deploy runs it)."""
    from tests.deploy.stack import Nginx

    class BenchNginx(Nginx):
        def write_config(self) -> Path:
            main = super().write_config()
            # Two sockets (browser and upstream) per session, for hundreds of sessions.
            main.write_text(
                main.read_text().replace("worker_connections 256;", "worker_connections 4096;")
            )
            return main

    static = workdir / "static"
    static.mkdir(parents=True, exist_ok=True)
    return BenchNginx(workdir=workdir, workers=workers, static_root=static).start()


async def run_level(
    target: Target, standin: StandInProcess, sessions: int, seconds: float, jpeg: bytes,
    *, go_away_after: float | None = None, go_away_time_left: float = 8.0,
) -> LevelResult:  # fmt: skip
    """Open ``sessions`` sessions, stream for ``seconds``, end them and take the figures."""
    result = LevelResult(target.name, sessions, seconds)
    standin.reset()
    users = [loadgen.SimUser(index + 1, target.transport(index), jpeg) for index in range(sessions)]
    relay = Sampler(target.pids)
    if target.pids and target.idle_rss is None:
        target.idle_rss = relay.rss()  # the fresh relay, before its first session
    base_rss = target.idle_rss or 0
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def opened(user: loadgen.SimUser) -> bool:
        async with gate:
            try:
                await user.open()
                return True
            except Exception as exc:  # noqa: BLE001 - counted and reported
                user.result.error = f"open: {type(exc).__name__}: {exc}"
                return False

    ok = await asyncio.gather(*(opened(user) for user in users))
    live = [user for user, good in zip(users, ok, strict=True) if good]
    await asyncio.to_thread(standin.settle)  # the sessions are open: settle both ends
    settle_garbage()
    result.opened = len(live)
    others = Sampler([standin.pid, os.getpid()])
    relay.start()
    others.start()
    streams = [asyncio.create_task(user.stream(seconds)) for user in live]
    if go_away_after is not None:
        await asyncio.sleep(go_away_after)
        await asyncio.to_thread(standin.go_away, go_away_time_left)
    await asyncio.gather(*streams, return_exceptions=True)
    cpu = await relay.stop()
    standin_cpu, generator_cpu = await others.stop()
    await asyncio.gather(*(user.finish() for user in live))
    report = await asyncio.to_thread(standin.report)
    _figures(result, users, report, cpu, base_rss, relay.peak, sessions)
    relayed = result.up_sent + result.down_sent
    if cpu and relayed:
        result.cpu_us_per_msg = relay.cpu_seconds * 1e6 / relayed
    result.standin_cpu_pct, result.generator_cpu_pct = standin_cpu, generator_cpu
    if go_away_after is not None:
        result.switch_ms = _switch_times(report)
    await _wait_closed(standin)
    return result


def _figures(
    result: LevelResult, users: list[loadgen.SimUser], report: Report, cpu: list[float],
    base_rss: int, peak_rss: int, sessions: int,
) -> None:  # fmt: skip
    """Loss, latency, CPU, memory and bytes from what both ends saw."""
    first: dict[tuple[int, str, int], int] = {}
    for kind, tag, seq, latency, _conn, _at in report.arrivals:
        first.setdefault((tag, kind, seq), latency)
    result.up_duplicates = len(report.arrivals) - len(first)
    for user in users:
        for kind, count in user.result.sent.items():
            result.up_sent += count
            result.up_lost += sum(1 for seq in range(count) if (user.tag, kind, seq) not in first)
        if user.result.error:
            result.errors.append(f"session {user.tag}: {user.result.error}")
    result.up_ms = percentiles(list(first.values()))
    for name in ("audio", "frame", "text"):
        values = [latency for (_tag, kind, _seq), latency in first.items() if kind == name]
        result.up_by_kind_ms[name] = percentiles(values)
    down = [latency for user in users for latency in user.result.down_latencies_ns]
    result.down_ms = percentiles(down)
    result.down_sent = report.sent_down
    result.down_lost = report.sent_down - sum(user.result.down_received for user in users)
    if cpu:
        result.worker_cpu_pct = sum(cpu)
        result.worker_peak_rss_mb = peak_rss / 2**20
        result.worker_base_rss_mb = base_rss / 2**20
        result.mem_per_session_mb = (peak_rss - base_rss) / 2**20 / max(sessions, 1)
    starts = [int(u.result.start_s * 1e9) for u in users if u.result.start_s is not None]
    result.start_ms = percentiles(starts)
    streamed = sum(user.result.streamed_s for user in users) / 60
    if streamed:
        result.wire_binary_per_min = sum(u.result.wire.binary for u in users) / streamed
        result.wire_base64_per_min = sum(u.result.wire.base64_json for u in users) / streamed


def _switch_times(report: Report) -> dict[str, float | None]:
    """From each goAway to the first input of its session on the next connection."""
    tag_of = {}
    for _kind, tag, _seq, _latency, conn, _at in report.arrivals:
        tag_of.setdefault(conn, tag)
    times = []
    for conn, at in report.go_aways:
        tag = tag_of.get(conn)
        later = [a for k, t, s, lat, c, a in report.arrivals if t == tag and c > conn]
        if later:
            times.append(min(later) - at)
    return percentiles(times)


async def _wait_closed(standin: StandInProcess, timeout: float = 30.0) -> None:
    """Let every upstream connection of the level close before the next one starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(standin.report)).open_connections == 0:
            return
        await asyncio.sleep(0.2)


def make_target(
    name: str, standin: StandInProcess, workdir: Path, site_env: dict[str, str]
) -> Target:
    """The configuration called ``name``."""
    if name == "direct":
        return DirectTarget(standin, workdir)
    if name == "bare":
        return BareTarget(standin, workdir)
    if name == "floor":
        return FloorTarget(standin, workdir)
    if name in ("site", "site2"):
        workers = 1 if name == "site" else 2
        return SiteTarget(standin, workdir, workers=workers, extra_env=site_env)
    raise ValueError(name)


async def run_all(
    *, configs: Sequence[str], levels: Sequence[int], seconds: float, workdir: Path,
    go_away: bool = True, log: Any = print, site_env: dict[str, str] | None = None,
    ramp: Sequence[int] | None = None, pinning: Pinning | None = None,
    bound_ms: float = capacity.P99_BOUND_MS, resolution: int = capacity.RESOLUTION,
) -> dict[str, Any]:  # fmt: skip
    """Every configuration on one stand-in; the results as a dict.

    With a ``ramp``, the configurations of KNEE_CONFIGS are searched for their knee
    (bench.capacity) and the others run at ``levels``; without one, every configuration
    runs at ``levels``. With ``pinning``, the relay under test and the load each get
    their own core.
    """
    pinning = pinning or Pinning(why_not="not asked for")
    own = cores_of(os.getpid())
    pin(os.getpid(), pinning.load, children=False)  # the generator; the stand-in inherits it
    try:
        return await _run_all(
            configs=configs, levels=levels, seconds=seconds, workdir=workdir, go_away=go_away,
            log=log, site_env=site_env, ramp=ramp, pinning=pinning, bound_ms=bound_ms,
            resolution=resolution,
        )  # fmt: skip
    finally:
        pin(os.getpid(), own, children=False)  # as it was (a test run goes on after it)


@dataclass
class _Run:
    """One run's stand-in, options and figures, shared by its configurations."""

    standin: StandInProcess
    workdir: Path
    jpeg: bytes
    seconds: float
    levels: Sequence[int]
    ramp: Sequence[int] | None
    pinning: Pinning
    bound_ms: float
    resolution: int
    go_away: bool
    log: Any
    site_env: dict[str, str]
    results: list[LevelResult] = field(default_factory=list)
    knees: list[capacity.Knee] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    observed: dict[str, list[int]] = field(default_factory=dict)  # cores found, once pinned

    async def config(self, name: str) -> None:
        """Set up one configuration, pin it, measure it (a knee or the levels), tear down."""
        searched = self.ramp is not None and name in KNEE_CONFIGS
        sizes = list(self.ramp) if searched and self.ramp is not None else list(self.levels)
        target = make_target(name, self.standin, self.workdir, self.site_env)
        try:
            await asyncio.to_thread(target.setup, max(sizes))
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.skipped[name] = f"{type(exc).__name__}: {exc}"
            self.log(f"{name}: skipped ({self.skipped[name]})")
            target.teardown()
            return
        for pid in target.relay_pids:
            pin(pid, self.pinning.relay)
        self.observed[name] = sorted({c for pid in target.relay_pids for c in cores_of(pid)})
        try:
            if searched:
                knee = await capacity.search(
                    name, lambda n: self.measure(target, n), sizes, bound_ms=self.bound_ms,
                    resolution=self.resolution, cpu_at=min(capacity.CPU_AT, max(sizes)),
                    log=self.log,
                )  # fmt: skip
                self.knees.append(knee)
                self.log(knee.line())
            else:
                for sessions in sizes:
                    await self.measure(target, sessions)
            if self.go_away and name == "site":
                await self.hand_over(target)
        finally:
            await asyncio.to_thread(target.teardown)

    async def measure(self, target: Target, sessions: int) -> LevelResult:
        """One level (a step of a ramp), kept and logged."""
        level = await run_level(target, self.standin, sessions, self.seconds, self.jpeg)
        self.results.append(level)
        self.log(_summary(level))
        return level

    async def hand_over(self, target: Target) -> None:
        """The goAway scenario: a level during which every connection is handed over."""
        after = min(4.0, self.seconds / 2)
        level = await run_level(
            target, self.standin, min(10, max(self.levels)), max(self.seconds, 2 * after + 4),
            self.jpeg, go_away_after=after,
        )  # fmt: skip
        level.config = "site-goaway"
        self.results.append(level)
        self.log(_summary(level))


async def _run_all(
    *, configs: Sequence[str], levels: Sequence[int], seconds: float, workdir: Path,
    go_away: bool, log: Any, site_env: dict[str, str] | None, ramp: Sequence[int] | None,
    pinning: Pinning, bound_ms: float, resolution: int,
) -> dict[str, Any]:  # fmt: skip
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    standin = StandInProcess(workdir / "standin-tls").start()
    pin(standin.pid, pinning.load)
    run = _Run(
        standin, workdir, loadgen.make_jpeg(), seconds, levels, ramp, pinning, bound_ms,
        resolution, go_away, log, site_env or {},
    )  # fmt: skip
    run.observed = {
        "generator": sorted(cores_of(os.getpid())),
        "stand-in": sorted(cores_of(standin.pid)),
    }
    metrics_ab: list[MetricsRound] = []
    try:
        for name in configs:
            if name == "metrics":
                ab = (standin, workdir, run.site_env, max(levels), seconds, run.jpeg, run.skipped)
                metrics_ab += await _metrics_or_skip(*ab, log, pinning=pinning)
            else:
                await run.config(name)
    finally:
        standin.stop()
    data = _run_data(run.results, metrics_ab, run.skipped, seconds, len(run.jpeg))
    data["knees"] = [asdict(knee) for knee in run.knees]
    data["pinning"] = {
        **pinning.as_dict(),
        "describe": pinning.describe(),
        "observed": run.observed,
    }
    data["ramp"] = list(ramp or [])
    data["bound_ms"] = bound_ms
    return data


def _run_data(
    results: list[LevelResult], metrics_ab: list[MetricsRound], skipped: dict[str, str],
    seconds: float, jpeg_bytes: int,
) -> dict[str, Any]:  # fmt: skip
    """What a run measured, with the machine and the command, as the JSON file holds it."""
    return {
        "results": [asdict(result) for result in results],
        "metrics_ab": [{**asdict(r), "overhead": r.overhead} for r in metrics_ab],
        "skipped": skipped,
        "machine": machine(),
        "command": " ".join(["python -m bench.run", *map(shlex.quote, sys.argv[1:])]),
        "jpeg_bytes": jpeg_bytes,
        "seconds": seconds,
    }


def _summary(level: LevelResult) -> str:
    up, down = level.up_ms, level.down_ms
    return (
        f"{level.config:>11} n={level.sessions:<4} opened={level.opened:<4}"
        f" up p50/p99={up.get('p50') or 0:.1f}/{up.get('p99') or 0:.1f} ms"
        f" down p50/p99={down.get('p50') or 0:.1f}/{down.get('p99') or 0:.1f} ms"
        f" lost={level.up_lost}+{level.down_lost} cpu={level.worker_cpu_pct or 0:.0f}%"
        f" cpu/msg={level.cpu_us_per_msg or 0:.0f} us"
        f" rss={level.worker_peak_rss_mb or 0:.0f} MB errors={len(level.errors)}"
    )


@dataclass
class MetricsRound:
    """One round of the metrics comparison: relay CPU per message, off and on."""

    round: int
    sessions: int
    seconds: float
    off_us: float
    on_us: float
    lost: int

    @property
    def overhead(self) -> float:
        """How much more CPU a message costs with metrics on (0.05: 5%)."""
        return self.on_us / self.off_us - 1


def _site_pair(standin: StandInProcess, workdir: Path, site_env: dict[str, str]) -> list[Any]:
    """Two one-worker sites, metrics off and on, each on its own database."""
    on = {"METRICS_TOKEN": secrets.token_urlsafe(16)}
    pair = []
    for name, env in (("metrics-off", {}), ("metrics-on", on)):
        database = {"DATABASE_URL": f"sqlite:///{workdir / name / 'bench.sqlite3'}"}
        extra = {**site_env, **database, **env}
        target = SiteTarget(standin, workdir / name, workers=1, extra_env=extra)
        target.name = name
        pair.append(target)
    return pair


async def _pair_round(
    pair: list[Any], standin: StandInProcess, sessions: int, seconds: float, jpeg: bytes,
    number: int,
) -> MetricsRound:  # fmt: skip
    """Stream ``sessions`` sessions, half through each site at once; CPU per message each.

    Session ``i`` goes to site ``(i + number) % 2``: the halves swap every round.
    """
    standin.reset()
    sides = [(index + number) % 2 for index in range(sessions)]
    sims = [
        loadgen.SimUser(index + 1, pair[side].transport(index // 2), jpeg)
        for index, side in enumerate(sides)
    ]
    await asyncio.gather(*(sim.open() for sim in sims))
    samplers = [Sampler(target.pids) for target in pair]
    for sampler in samplers:
        sampler.start()
    await asyncio.gather(*(sim.stream(seconds) for sim in sims))
    for sampler in samplers:
        await sampler.stop()
    await asyncio.gather(*(sim.finish() for sim in sims))
    per_message = []
    for side, sampler in enumerate(samplers):
        mine = [sim for sim, on in zip(sims, sides, strict=True) if on == side]
        relayed = sum(sum(sim.result.sent.values()) + sim.result.down_received for sim in mine)
        per_message.append(sampler.cpu_seconds * 1e6 / max(relayed, 1))
    report = await asyncio.to_thread(standin.report)
    lost = report.sent_down - sum(sim.result.down_received for sim in sims)
    await _wait_closed(standin)
    return MetricsRound(number + 1, sessions, seconds, per_message[0], per_message[1], lost)


async def run_metrics_ab(
    standin: StandInProcess, workdir: Path, site_env: dict[str, str], sessions: int,
    seconds: float, jpeg: bytes, rounds: int | None = None, log: Any = print,
    pinning: Pinning | None = None,
) -> list[MetricsRound]:  # fmt: skip
    """What counting costs: rounds of half the sessions through each of a site with metrics
    off and one with them on, at the same time, so that both see the same machine."""
    pair = _site_pair(standin, workdir, site_env)
    try:
        for target in pair:
            await asyncio.to_thread(target.setup, sessions)
            for pid in target.relay_pids:  # both on the relay's core, side by side
                pin(pid, pinning.relay if pinning else frozenset())
        results = []
        for number in range(METRICS_ROUNDS if rounds is None else rounds):
            result = await _pair_round(pair, standin, sessions, seconds, jpeg, number)
            log(metrics_line(result))
            results.append(result)
        return results
    finally:
        for target in pair:
            await asyncio.to_thread(target.teardown)


async def _metrics_or_skip(
    standin: StandInProcess, workdir: Path, site_env: dict[str, str], most: int,
    seconds: float, jpeg: bytes, skipped: dict[str, str], log: Any, *,
    pinning: Pinning | None = None,
) -> list[MetricsRound]:  # fmt: skip
    """The metrics comparison at up to METRICS_SESSIONS (an even number, at most ``most``),
    or nothing (and why, in ``skipped``) if it could not run."""
    sessions = max(2, min(METRICS_SESSIONS, most) // 2 * 2)
    try:
        return await run_metrics_ab(
            standin, workdir, site_env, sessions, seconds, jpeg, log=log, pinning=pinning
        )
    except Exception as exc:  # noqa: BLE001 - reported in the results
        skipped["metrics"] = f"{type(exc).__name__}: {exc}"
        log(f"metrics: skipped ({skipped['metrics']})")
        return []


def metrics_summary(rounds: Sequence[dict[str, Any]]) -> str:
    """The rounds' mean overhead of the metrics, with the lowest and highest round."""
    overheads = [100 * r["overhead"] for r in rounds]
    mean = sum(overheads) / len(overheads)
    return (
        f"metrics: mean overhead_pct={mean:+.1f} over {len(overheads)} rounds"
        f" (from {min(overheads):+.1f} to {max(overheads):+.1f})"
    )


def metrics_line(result: MetricsRound) -> str:
    """The printed figure of one round."""
    return (
        f"metrics: round={result.round} sessions={result.sessions}"
        f" cpu_us_per_msg_off={result.off_us:.1f} cpu_us_per_msg_on={result.on_us:.1f}"
        f" overhead_pct={100 * result.overhead:+.1f} lost={result.lost}"
    )


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sessions", default="1,10,50,100",
        help="sizes for the configurations not searched for a knee (site2, metrics)",
    )  # fmt: skip
    parser.add_argument(
        "--ramp", default=",".join(map(str, RAMP)),
        help="sizes the knee search climbs (direct, bare, site); 'none' runs them at --sessions",
    )  # fmt: skip
    parser.add_argument("--bound-ms", type=float, default=capacity.P99_BOUND_MS)
    parser.add_argument("--resolution", type=int, default=capacity.RESOLUTION)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "results.json")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument(
        "--site-env", action="append", default=[], metavar="NAME=VALUE",
        help="an extra setting for the product's workers (repeatable), e.g. DJANGO_CONN_MAX_AGE=60",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_site.settings")
    use_uvloop()  # the generator, like the stand-in, runs on uvloop (see StandInProcess)
    data = asyncio.run(
        run_all(
            configs=[c for c in args.configs.split(",") if c],
            levels=[int(n) for n in args.sessions.split(",")],
            seconds=args.seconds,
            workdir=args.workdir,
            site_env=dict(item.split("=", 1) for item in args.site_env),
            ramp=None if args.ramp == "none" else [int(n) for n in args.ramp.split(",")],
            pinning=plan(enabled=not args.no_pin),
            bound_ms=args.bound_ms,
            resolution=args.resolution,
        )
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1))
    if not args.no_report:
        from bench import report

        report.write(data, args.report)
        print(f"wrote {args.report}")
    print(f"pinning: {data['pinning']['describe']}")
    for knee in data["knees"]:
        print(capacity.Knee(**knee).line())
    if data["metrics_ab"]:
        print(metrics_summary(data["metrics_ab"]))
    lost = sum(r["up_lost"] + r["down_lost"] for r in data["results"])
    print(f"lost messages in all: {lost}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
