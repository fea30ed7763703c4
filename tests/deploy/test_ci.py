"""What makes the smoke test real in CI: PostgreSQL is required, and nginx is installed.

With CI=true (.ci/run) the smoke test must not skip or quietly run on another database:
a test database that is not PostgreSQL fails it, and deploy/ensure-nginx.sh (run by
`make test` and `make deploy-test`) installs a missing nginx or stops the run loudly.
"""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.deploy.stack import venv_path
from tests.processes import ROOT

ENSURE_NGINX = ROOT / "deploy" / "ensure-nginx.sh"
SMOKE_TEST = "tests/deploy/test_nginx_deploy.py::test_the_container_health_check_script"
NEEDS_POSTGRESQL = "the deployment smoke test needs PostgreSQL, as in production"


def run_smoke_test(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    """One smoke test in a pytest of its own, on SQLite (the default database)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        # Should the check let the run through, its SQLite test database gets a name of its
        # own (pytest-django's suffix for parallel tox runs), not the suite's var/ file.
        TOX_PARALLEL_ENV=f"deploy-gate-{uuid.uuid4().hex[:8]}",
        REDIS_URL=env.get("REDIS_URL") or "redis://127.0.0.1:9",
    )
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", SMOKE_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_smoke_test_fails_in_ci_unless_the_database_is_postgresql(tmp_path: Path) -> None:
    result = run_smoke_test(tmp_path, ci=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 error" in output, output  # the fixture failed the test; it did not skip
    assert NEEDS_POSTGRESQL in output, output
    assert "django.db.backends.sqlite3" in output, output
    assert "with CI=true this test must run" in output, output
    assert not list(tmp_path.iterdir())  # stopped before any database was set up


def test_the_smoke_test_skips_locally_unless_the_database_is_postgresql(tmp_path: Path) -> None:
    result = run_smoke_test(tmp_path, ci=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 skipped" in output, output
    assert NEEDS_POSTGRESQL in output, output


# --- deploy/ensure-nginx.sh ------------------------------------------------------------------


def fake_tools(bin_dir: Path, *, uid: int) -> None:
    """``id``, ``sudo`` (never allowed) and ``apt-get`` (logs its calls; $FAKE_APT decides:
    "fail", "nothing" or "install", which creates $NGINX_BIN) for ensure-nginx.sh."""
    bin_dir.mkdir(parents=True)
    scripts = {
        "id": f'#!/bin/sh\n[ "$1" = -u ] && echo {uid} && exit 0\nexit 1\n',
        "sudo": "#!/bin/sh\nexit 1\n",
        "apt-get": (
            "#!/bin/sh\n"
            'echo "apt-get $* policy=$(test -x "$POLICY_RC_D" && echo on || echo off)"'
            ' >> "$APT_LOG"\n'
            'case "$1" in update) exit 0;; esac\n'
            'case "$FAKE_APT" in\n'
            "  fail) echo 'E: Unable to locate package nginx-light' >&2; exit 100;;\n"
            "  nothing) exit 0;;\n"
            "  install) printf '#!/bin/sh\\necho nginx version: fake >&2\\n' > \"$NGINX_BIN\";"
            ' chmod +x "$NGINX_BIN"; exit 0;;\n'
            "esac\n"
            "exit 2\n"
        ),
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


def ensure_nginx(
    tmp_path: Path, *, uid: int, ci: bool, apt: str = "install", present: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run deploy/ensure-nginx.sh with fake tools; its result and the apt-get calls."""
    fake_tools(tmp_path / "bin", uid=uid)
    nginx_bin, apt_log = tmp_path / "nginx", tmp_path / "apt.log"
    if present:
        nginx_bin.write_text("#!/bin/sh\n")
        nginx_bin.chmod(0o755)
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "NGINX_BIN": str(nginx_bin),
        "POLICY_RC_D": str(tmp_path / "policy-rc.d"),
        "APT_LOG": str(apt_log),
        "FAKE_APT": apt,
    }
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        ["bash", str(ENSURE_NGINX)], env=env, capture_output=True, text=True, timeout=30
    )
    calls = apt_log.read_text().splitlines() if apt_log.exists() else []
    return result, calls


def test_ensure_nginx_does_nothing_when_nginx_is_there(tmp_path: Path) -> None:
    result, calls = ensure_nginx(tmp_path, uid=0, ci=True, present=True)
    assert result.returncode == 0, result.stderr
    assert calls == []


def test_ensure_nginx_installs_a_missing_nginx_as_root(tmp_path: Path) -> None:
    result, calls = ensure_nginx(tmp_path, uid=0, ci=True)
    assert result.returncode == 0, result.stderr
    assert [call.split()[1] for call in calls] == ["update", "install"]
    # The package's post-install may not start a system-wide nginx; the guard is removed.
    assert "nginx-light" in calls[1]
    assert calls[1].endswith("policy=on")
    assert not (tmp_path / "policy-rc.d").exists()
    assert "nginx version: fake" in result.stderr


@pytest.mark.parametrize(
    ("apt", "message"),
    [
        ("fail", "apt-get install nginx-light failed"),
        ("nothing", "is still missing"),
    ],
)
def test_ensure_nginx_fails_loudly_when_the_install_does_not_work(
    tmp_path: Path, apt: str, message: str
) -> None:
    result, calls = ensure_nginx(tmp_path, uid=0, ci=True, apt=apt)
    assert result.returncode != 0
    error = result.stderr.split("ensure-nginx: ERROR: ", 1)
    assert len(error) == 2, result.stderr
    assert message in error[1]
    if apt == "fail":
        assert "E: Unable to locate package nginx-light" in error[0]  # apt-get's own words
    assert len(calls) == 2


def test_ensure_nginx_without_root_fails_in_ci_and_only_warns_locally(tmp_path: Path) -> None:
    in_ci, calls = ensure_nginx(tmp_path / "ci", uid=1000, ci=True)
    assert in_ci.returncode != 0
    assert "ensure-nginx: ERROR:" in in_ci.stderr
    assert "CI=true" in in_ci.stderr
    assert calls == []
    local, calls = ensure_nginx(tmp_path / "local", uid=1000, ci=False)
    assert local.returncode == 0, local.stderr
    assert "will be skipped" in local.stderr
    assert calls == []


def test_ci_runs_make_test_which_ensures_nginx_before_the_suite() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in ci_run
    assert ci_run.rstrip().splitlines()[-1] == "make test"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "deploy-test"):
        rule = re.search(rf"^{target}: (?!export)(?P<prerequisites>.*)$", makefile, re.M)
        assert rule is not None, target
        assert "nginx" in rule["prerequisites"].split(), target
    # What make would run for `make test`, in order: nginx is ensured before pytest starts.
    planned = subprocess.run(
        ["make", "-n", "test"],
        cwd=ROOT,
        env={**os.environ, "PATH": venv_path(), "CI": "true"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "bash deploy/ensure-nginx.sh" in planned
    assert planned.index("bash deploy/ensure-nginx.sh") < planned.index("-m pytest")
