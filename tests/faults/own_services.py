"""Backing services of a fault test's own, never the machine's shared ones.

Each class starts a real server as a subprocess in a directory of its own, on a free
port, so that a test can stop and start it mid-session without touching the services
the rest of the suite uses.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.processes import free_port, kill_quietly

# --- OwnRedis: a redis-server of the test's own --------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


class OwnRedis:
    """A ``redis-server`` on a free port, kept in memory only; stop() and start() again
    on the same port come back empty, as a restarted production Redis without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The REDIS_URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "OwnRedis":
        """Start the server and wait until it answers PING."""
        assert REDIS_SERVER is not None, "redis-server is not installed"
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--bind", "127.0.0.1", "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_until_it_answers(timeout)
        return self

    def stop(self) -> None:
        """Shut the server down (SIGTERM: it closes every client connection) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """Kill the server if it still runs (teardown)."""
        if self.process is not None:
            kill_quietly(self.process)
        self.process = None

    def ping(self) -> bool:
        """Whether the server answers now."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False
        finally:
            client.close()

    def _wait_until_it_answers(self, timeout: float) -> None:
        """Poll PING until it answers; fail early if the server exited."""
        deadline = time.monotonic() + timeout
        while not self.ping():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on {self.port} did not answer in {timeout} s")
            time.sleep(0.05)  # the deadline-bound poll of a starting server


# --- OwnPostgres: a PostgreSQL cluster of the test's own -----------------------------------

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


class OwnPostgres:
    """A PostgreSQL cluster of its own: ``initdb`` as the postgres user, trust auth, on
    127.0.0.1 and a free port, in a temporary directory. stop() and start() are what an
    operator's ``pg_ctl`` does; close() (teardown) stops it however it can and removes it.
    """

    def __init__(self, database: str = "app") -> None:
        # Not under pytest's tmp_path: root's directories there are closed to other users.
        self.directory = Path(tempfile.mkdtemp(prefix="own-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, PG_USER, PG_USER)
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = free_port()
        self.database = database

    @staticmethod
    def available() -> bool:
        """Whether the PostgreSQL server binaries are installed."""
        return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()

    @property
    def url(self) -> str:
        """The DATABASE_URL of the cluster's database."""
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{self.database}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the postgres user (root may not run the server)."""
        command = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}{self.log()}")
        return done

    def init(self) -> "OwnPostgres":
        """Create the cluster and its database (once)."""
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER, "-E", "UTF8",
                 "--no-sync", "--no-instructions")  # fmt: skip
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')  # a fixed test name
        return self

    @property
    def admin_url(self) -> str:
        """The URL of the cluster's maintenance database."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                 "-w", "-t", "30", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: every client connection is cut) and wait."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def running(self) -> bool:
        """Whether the server runs now."""
        return self._pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def log(self) -> str:
        """What the server logged."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Teardown: stop the server whatever state it is in, and remove its directory."""
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # stop failed: kill the postmaster itself
                pid = pid_file.read_text().split("\n", 1)[0].strip()
                if pid.isdigit():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "OwnPostgres":
        """Create and start the cluster."""
        return self.init()

    def __exit__(self, *exc: object) -> None:
        """Stop and remove the cluster."""
        self.close()
