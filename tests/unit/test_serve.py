"""Daphne runs on uvloop through assistant_site.serve, the command every deployment uses."""

import subprocess
import sys

import pytest

SHOW_LOOP = (
    "import assistant_site.serve as serve; print(serve.use_uvloop());"
    " import daphne.server; print(type(daphne.server.twisted_loop).__module__)"
)


@pytest.mark.parametrize(
    ("setting", "in_use", "loop_module"),
    [("1", "True", "uvloop"), ("0", "False", "asyncio.unix_events")],
)
def test_daphnes_loop_is_uvloop_unless_switched_off(
    setting: str, in_use: str, loop_module: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SHOW_LOOP], capture_output=True, text=True, check=True,
        env={"DAPHNE_UVLOOP": setting, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.split() == [in_use, loop_module]
