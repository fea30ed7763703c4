"""The benchmark's stand-in process does not outlive the benchmark that started it."""

import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
DIES = """
import os, sys
from pathlib import Path
from bench.standin_proc import StandInProcess

if __name__ == "__main__":
    standin = StandInProcess(Path(sys.argv[1])).start()
    print(standin.process.pid, flush=True)
    os._exit(0)  # gone without a word: killed, or crashed
"""


def test_the_stand_in_stops_when_the_benchmark_is_gone(tmp_path: Path) -> None:
    script = tmp_path / "dies.py"
    script.write_text(DIES)
    benchmark = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "tls")], cwd=ROOT, stdout=subprocess.PIPE,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert benchmark.stdout is not None
    child = psutil.Process(int(benchmark.stdout.readline()))  # the stand-in inherits the pipe
    assert benchmark.wait(30) == 0
    deadline = time.monotonic() + 10
    while child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        # Before the fix it spun on the closed pipe at about half a core, forever.
        if time.monotonic() > deadline:
            usage = child.cpu_percent(0.5)
            child.kill()
            raise AssertionError(f"the stand-in still runs, at {usage}% of a core")
        time.sleep(0.1)
