"""`make run` from the README: serves the login page, and its printed credentials log in.

This runs the real command with no Gemini key, so it also proves the offline demo model:
a live session over the WebSocket gets a reply from the built-in stand-in.
"""

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.processes import ROOT, free_port, wait_for_http


def _opener() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar)), jar


def _cookie(jar: http.cookiejar.CookieJar, name: str) -> str:
    return next(c.value for c in jar if c.name == name)


async def _talk(port: int, session_cookie: str) -> list[dict]:
    """One text turn over the share WebSocket; returns the JSON messages received."""
    messages: list[dict] = []
    async with connect(
        f"ws://127.0.0.1:{port}/ws/share/",
        additional_headers={"Cookie": f"sessionid={session_cookie}"},
        origin=f"http://127.0.0.1:{port}",
    ) as ws:
        await ws.send(json.dumps({"type": "start", "mode": "text"}))
        async with asyncio.timeout(20):
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                message = json.loads(raw)
                messages.append(message)
                if message["type"] == "status" and message["state"] == "live":
                    await ws.send(json.dumps({"type": "text", "text": "hello offline"}))
                if message["type"] in ("turn_complete", "error"):
                    break
    return messages


def start_make_run(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """`make run` on ``port`` with no Django, Gemini or database settings of this run's
    own; returns the process and the log its output goes to."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "GEMINI_", "DATABASE_URL", "REDIS_URL", "MAKE"))
    }
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log_path


def log_in_with_printed_credentials(base: str, log_path: Path) -> http.cookiejar.CookieJar:
    """Log in with the credentials `make run` printed; returns the logged-in cookies."""
    output = log_path.read_text()
    match = re.search(r"username: (\S+)\s+password: (\S+)", output)
    assert match, output
    username, password = match.groups()

    opener, jar = _opener()
    page = opener.open(f"{base}/accounts/login/").read().decode()
    assert 'name="password"' in page
    form = urllib.parse.urlencode(
        {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": _cookie(jar, "csrftoken"),
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - local test server
        f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
    )
    share = opener.open(request)
    assert share.geturl() == f"{base}/"
    body = share.read().decode()
    assert 'data-testid="start"' in body
    assert 'data-testid="offline-notice"' in body
    return jar


def check_offline_demo_replies(port: int, jar: http.cookiejar.CookieJar) -> None:
    """A text turn over the WebSocket gets the built-in stand-in's reply."""
    # Its own thread: Playwright may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        messages = pool.submit(asyncio.run, _talk(port, _cookie(jar, "sessionid"))).result()
    types_ = [m["type"] for m in messages]
    assert "error" not in types_, messages
    live = next(m for m in messages if m.get("state") == "live")
    assert live["offline_demo"] is True
    reply = "".join(
        m["text"] for m in messages if m["type"] == "transcript" and m["role"] == "model"
    )
    assert 'You said: "hello offline"' in reply


def test_make_run_serves_and_printed_credentials_log_in(tmp_path: Path) -> None:
    port = free_port()
    process, log_path = start_make_run(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/accounts/login/", process, timeout=120)
        jar = log_in_with_printed_credentials(base, log_path)
        check_offline_demo_replies(port, jar)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("make run did not stop on SIGTERM")
