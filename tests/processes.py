"""Helpers for tests that run the site in real server processes (Daphne, nginx)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

from tests.leaks import SCANNER

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - local test server
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def database_url() -> str:
    """A DATABASE_URL for the database this test run uses (the test database)."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{conf['NAME']}"


class ServesTheSite:
    """A local server of the site on ``port``: its HTTP base URL and its share WebSocket."""

    port: int

    @property
    def url(self) -> str:
        """The HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The share WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/ws/share/"


@dataclass
class DaphneWorker(ServesTheSite):
    """One Daphne process serving the site on the test database."""

    name: str
    env: Mapping[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> "DaphneWorker":
        """Start Daphne and wait until it serves the login page."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "assistant_site.serve",  # Daphne, on uvloop
                 "-b", "127.0.0.1", "-p", str(self.port), "assistant_site.asgi:application"],
                cwd=ROOT, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for_http(f"{self.url}/accounts/login/", self.process)
        return self

    def signal(self, signum: signal.Signals, timeout: float = 20.0) -> int:
        """Send ``signum`` and wait for the process to exit; its exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Terminate the process if it still runs; its log is scanned for the API key."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path.exists():
            self.log()

    def log(self) -> str:
        """What the process printed (scanned for the API key)."""
        text = self.log_path.read_text(errors="replace")
        SCANNER.scan("server-log", text)
        return text


def worker_env(base: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """The environment of a worker process on the test database."""
    env = dict(os.environ if base is None else base)
    env.update({"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process if it still runs."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
