"""The production topology, natively: deploy/nginx.conf in Debian's nginx in front of two
Daphne workers on the real Redis and the test database, driven like a browser.

Everything goes through nginx: the log-in form, the share page and its static files, the
share WebSocket against the Gemini Live stand-in, the admin. Which worker served what is
read from the logs (nginx's access log names the upstream; Daphne logs each WebSocket).
"""

import asyncio
import json
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessLog
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.html import escape

from tests.clients import expect, say, start_live
from tests.deploy.conftest import METRICS_TOKEN
from tests.deploy.stack import (
    SITE_CONF,
    Nginx,
    WebClient,
    holder_of_new_socket,
    open_share_socket,
    venv_path,
    ws_connects,
)
from tests.processes import ROOT, DaphneWorker, free_port
from tests.records import stored_unnumbered

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/sessions_app/livesession/"
ALICE = ("alice", "alice-pass-123")  # tests/conftest.py's user fixture
ADMIN = ("admin", "password")  # pytest-django's admin_user fixture


def address(worker: DaphneWorker) -> str:
    """How nginx names ``worker`` in its access log."""
    return f"127.0.0.1:{worker.port}"


async def check_static_through_nginx(
    nginx: Nginx, workers: list[DaphneWorker], static_root: Path, alice: WebClient
) -> None:
    """The share page and its stylesheet, served by nginx rather than the workers."""
    # The share page, and its stylesheet from nginx's disk with the cache headers.
    page = await asyncio.to_thread(alice.get, "/")
    assert page.status == 200
    # The page knows its own address (Host with the port) and scheme through the proxy.
    assert (
        f"connect-src 'self' ws://127.0.0.1:{nginx.port}" in page.headers["Content-Security-Policy"]
    )
    assert 'href="/static/css/site.css"' in page.text
    assert '<script type="module" src="/static/js/share.js">' in page.text
    css = await asyncio.to_thread(alice.get, "/static/css/site.css")
    assert css.status == 200
    assert css.body == (static_root / "css" / "site.css").read_bytes()
    assert css.headers["Content-Type"] == "text/css"
    assert "max-age=3600" in ", ".join(css.headers.get_all("Cache-Control") or [])
    assert "public" in ", ".join(css.headers.get_all("Cache-Control") or [])
    assert css.headers["Expires"]
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    # The workers do not serve static files at all: the file above came from nginx.
    direct = await asyncio.to_thread(alice.request, "/static/css/site.css", None, workers[0].url)
    assert direct.status == 404


async def check_round_robin_and_health(
    nginx: Nginx, workers: list[DaphneWorker], alice: WebClient
) -> None:
    """Pages come from both workers, and /healthz answers through nginx."""
    # Round robin without stickiness: the logged-in browser's pages come from both workers.
    before = len(nginx.access_lines())
    for _ in range(4):
        history = await asyncio.to_thread(alice.get, "/sessions/")
        assert history.status == 200  # still logged in, whichever worker answers
    served = {line.rsplit("upstream=", 1)[1].split()[0] for line in nginx.access_lines()[before:]}
    assert served == {address(worker) for worker in workers}

    # /healthz through nginx: each worker's database and channel layer.
    health = await asyncio.to_thread(alice.get, "/healthz")
    assert health.status == 200
    assert json.loads(health.body) == {"status": "ok", "database": "ok", "channel_layer": "ok"}


async def run_live_session_and_check(
    nginx: Nginx, alice: WebClient
) -> tuple[str, list[tuple[str, str, str]]]:
    """A live session through nginx; return its id and stored transcript lines."""
    # A short live session over the WebSocket through nginx, against the stand-in.
    ws = await open_share_socket(nginx, alice)
    session_id = await start_live(ws)
    await say(ws, "hello through nginx")
    await ws.send(json.dumps({"type": "stop"}))
    ended = await expect(ws, "status", state="ended")
    assert ended["reason"] == "client_stop"
    await ws.close()
    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("ended", "client_stop")
    assert lines[0] == ("user", "typed", "hello through nginx")
    assert lines[1][:2] == ("model", "speech")
    assert lines[1][2]
    return session_id, lines


async def check_admin_transcript(
    nginx: Nginx, session_id: str, lines: list[tuple[str, str, str]]
) -> None:
    """The session's transcript as the admin shows it through nginx."""
    # The transcript in the admin, through nginx, as a superuser who logged in by the form.
    admin = WebClient(nginx.url)
    await asyncio.to_thread(admin.login, *ADMIN)
    change = await asyncio.to_thread(admin.get, f"{CHANGELIST}{session_id}/change/")
    assert change.status == 200
    assert escape("hello through nginx") in change.text
    assert escape(lines[1][2]) in change.text
    assert "Stopped by the user" in change.text


async def test_a_browser_session_through_nginx(
    nginx: Nginx, workers: list[DaphneWorker], static_root: Path, user: Any, admin_user: Any
) -> None:
    # This browser forges the proxy headers. nginx overwrites X-Forwarded-Proto (were
    # "https" believed, the log-in form's CSRF check would fail on the http Origin) and
    # appends the address it saw to X-Forwarded-For, which Django takes as the client's.
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    alice = WebClient(nginx.url, extra_headers=forged)
    await asyncio.to_thread(alice.login, *ALICE)
    logins = await database_sync_to_async(
        lambda: list(
            AccessLog.objects.filter(username="alice").values_list("ip_address", flat=True)
        )
    )()
    assert logins == ["127.0.0.1"]

    await check_static_through_nginx(nginx, workers, static_root, alice)
    await check_round_robin_and_health(nginx, workers, alice)
    session_id, lines = await run_live_session_and_check(nginx, alice)
    await check_admin_transcript(nginx, session_id, lines)


async def test_the_admin_action_through_nginx_ends_a_session_held_by_the_other_worker(
    nginx: Nginx, workers: list[DaphneWorker], user: Any, admin_user: Any
) -> None:
    alice, admin = WebClient(nginx.url), WebClient(nginx.url)
    await asyncio.to_thread(alice.login, *ALICE)
    await asyncio.to_thread(admin.login, *ADMIN)
    # Any admin page's form token will do (the action bar shows only once sessions exist).
    listing = await asyncio.to_thread(admin.get, CHANGELIST)
    assert listing.status == 200
    token = admin.form_token(listing.text)

    # nginx picks the worker of each request in turn; which one holds the socket and which
    # one serves the admin's POST is read from the logs. Rounds where both are the same
    # worker are valid too, but the point is the other case, which must occur.
    rounds: list[tuple[str, str]] = []
    for attempt in range(6):
        before = [ws_connects(worker) for worker in workers]
        ws = await open_share_socket(nginx, alice)
        holder = await asyncio.to_thread(holder_of_new_socket, workers, before)
        session_id = await start_live(ws)
        await say(ws, f"round {attempt}")

        logged = len(nginx.access_lines())
        posted = await asyncio.to_thread(
            admin.request,
            CHANGELIST,
            {"action": "end_now", "_selected_action": session_id, "index": "0",
             "csrfmiddlewaretoken": token},
        )  # fmt: skip
        assert posted.status == 302, posted.text[:2000]
        served_by = await asyncio.to_thread(nginx.upstream_of, f"POST {CHANGELIST}", logged)

        ended = await expect(ws, "status", state="ended")
        assert ended["reason"] == "admin_ended"
        assert ended["message"] == "An administrator ended this session."
        await ws.close()
        session, lines = await stored_unnumbered(session_id)
        assert (session.status, session.end_reason) == ("ended", "admin_ended")
        assert lines[0] == ("user", "typed", f"round {attempt}")
        rounds.append((address(holder), served_by))
        if served_by != address(holder):
            break
        # Same worker: one more request shifts the round robin for the next round.
        assert (await asyncio.to_thread(admin.get, "/healthz")).status == 200
    assert any(holder != served for holder, served in rounds), rounds
    listing = await asyncio.to_thread(admin.get, CHANGELIST)
    assert "End live session now" in listing.text
    assert "Asked 1 live session(s) to end." in listing.text


async def test_stopping_one_worker_keeps_the_site_up_and_stores_its_session(
    nginx: Nginx, workers: list[DaphneWorker], user: Any
) -> None:
    alice = WebClient(nginx.url)
    await asyncio.to_thread(alice.login, *ALICE)
    before = [ws_connects(worker) for worker in workers]
    ws = await open_share_socket(nginx, alice)
    holder = await asyncio.to_thread(holder_of_new_socket, workers, before)
    survivor = next(worker for worker in workers if worker is not holder)
    session_id = await start_live(ws)
    await say(ws, "before the restart")

    # SIGTERM, as `docker compose stop web1` sends it: the live session is ended and stored.
    assert await asyncio.to_thread(holder.signal, signal.SIGTERM) == 0
    logged = len(nginx.access_lines())
    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("ended", "server_shutdown")
    assert lines[0] == ("user", "typed", "before the restart")
    assert lines[1][:2] == ("model", "speech")
    await ws.close()

    # nginx moves on to the other worker: pages and new sessions keep working.
    for _ in range(3):
        page = await asyncio.to_thread(alice.get, "/sessions/")
        assert page.status == 200
    for attempt in range(3):
        before = [ws_connects(worker) for worker in workers]
        ws = await open_share_socket(nginx, alice)
        assert await asyncio.to_thread(holder_of_new_socket, workers, before) is survivor
        new_id = await start_live(ws)
        await say(ws, f"after the restart {attempt}")
        await ws.send(json.dumps({"type": "stop"}))
        await expect(ws, "status", state="ended", reason="client_stop")
        await ws.close()
        new_session, new_lines = await stored_unnumbered(new_id)
        assert new_session.end_reason == "client_stop"
        assert new_lines[0] == ("user", "typed", f"after the restart {attempt}")
    after_stop = nginx.access_lines()[logged:]
    # The stopped worker was tried once, refused the connection, and nginx went on to the
    # survivor within the same request (proxy_next_upstream); no request failed.
    assert any(f"upstream={address(holder)}, {address(survivor)} " in line for line in after_stop)
    statuses = [line.split('" ', 1)[1].split()[0] for line in after_stop]
    assert set(statuses) <= {"200", "101"}, statuses


async def test_tls_in_nginx_as_docker_compose_tls_yml_sets_it_up(
    tls_nginx: Nginx, workers: list[DaphneWorker], user: Any
) -> None:
    assert tls_nginx.certificate is not None
    context = tls_nginx.certificate.client_context()
    alice = WebClient(tls_nginx.https_url, ssl_context=context)
    page = await asyncio.to_thread(alice.get, "/accounts/login/")
    assert page.status == 200
    # Django saw X-Forwarded-Proto: https, so the request counts as secure: HSTS is sent,
    # and the share page's policy names the wss:// address.
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    await asyncio.to_thread(alice.login, *ALICE)  # CSRF checks the https:// Origin
    share = await asyncio.to_thread(alice.get, "/")
    assert share.status == 200
    policy = share.headers["Content-Security-Policy"]
    assert f"connect-src 'self' wss://127.0.0.1:{tls_nginx.tls_port}" in policy

    # A live session over wss:// through nginx.
    ws = await open_share_socket(tls_nginx, alice, secure=True)
    session_id = await start_live(ws)
    await say(ws, "hello over TLS")
    await ws.send(json.dumps({"type": "stop"}))
    await expect(ws, "status", state="ended", reason="client_stop")
    await ws.close()
    session, lines = await stored_unnumbered(session_id)
    assert (session.status, session.end_reason) == ("ended", "client_stop")
    assert lines[0] == ("user", "typed", "hello over TLS")

    # The same server on the plain-HTTP port: Django sees http there.
    plain = await asyncio.to_thread(WebClient(tls_nginx.url).get, "/accounts/login/")
    assert plain.status == 200
    assert "Strict-Transport-Security" not in plain.headers
    assert (
        f"connect-src 'self' ws://127.0.0.1:{tls_nginx.port}"
        in plain.headers["Content-Security-Policy"]
    )


def body_limit() -> int:
    """deploy/nginx.conf's client_max_body_size, in bytes."""
    found = re.findall(r"^\s*client_max_body_size\s+(\d+)([kKmM]?);", SITE_CONF.read_text(), re.M)
    assert len(found) == 1, found
    number, unit = found[0]
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def login_form(token: str, size: int) -> dict[str, str]:
    """Alice's log-in form, padded with an extra field to exactly ``size`` bytes."""
    form = {"csrfmiddlewaretoken": token, "username": ALICE[0], "password": ALICE[1], "pad": ""}
    form["pad"] = "x" * (size - len(urllib.parse.urlencode(form)))
    assert len(urllib.parse.urlencode(form)) == size
    return form


async def test_nginx_refuses_request_bodies_over_its_limit(nginx: Nginx, user: Any) -> None:
    limit = body_limit()
    # Below what Django would buffer itself (so the oversized body never reaches a
    # worker), and room for the admin's forms.
    assert 64 * 1024 <= limit < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    browser = WebClient(nginx.url)
    page = await asyncio.to_thread(browser.get, "/accounts/login/")
    token = browser.form_token(page.text)

    # One byte over: nginx answers 413 itself, without asking a worker.
    logged = len(nginx.access_lines())
    refused = await asyncio.to_thread(
        browser.request, "/accounts/login/", login_form(token, limit + 1)
    )
    assert refused.status == 413, refused.text[:500]
    assert "Request Entity Too Large" in refused.text
    assert "sessionid" not in browser.cookies
    assert await asyncio.to_thread(nginx.upstream_of, "POST /accounts/login/", logged) == "-"

    # Exactly the limit: passed on, and the worker logs Alice in.
    logged = len(nginx.access_lines())
    accepted = await asyncio.to_thread(
        browser.request, "/accounts/login/", login_form(token, limit)
    )
    assert accepted.status == 302, accepted.text[:500]
    assert "sessionid" in browser.cookies
    served_by = await asyncio.to_thread(nginx.upstream_of, "POST /accounts/login/", logged)
    assert served_by.startswith("127.0.0.1:")


def run_healthcheck(port: int, allowed_hosts: str) -> subprocess.CompletedProcess[str]:
    """deploy/healthcheck.sh (the web containers' health check) against ``port``."""
    return subprocess.run(
        ["deploy/healthcheck.sh", str(port)],
        cwd=ROOT,
        env={"PATH": venv_path(), "DJANGO_ALLOWED_HOSTS": allowed_hosts},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_container_health_check_script(workers: list[DaphneWorker]) -> None:
    healthy = run_healthcheck(workers[0].port, "localhost,127.0.0.1")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert json.loads(healthy.stdout)["status"] == "ok"
    # A Host the worker refuses (Django answers 400), and a worker that is not there.
    refused = run_healthcheck(workers[0].port, "not-this-site.example")
    assert refused.returncode != 0
    assert "HTTP 400" in refused.stdout
    gone = run_healthcheck(free_port(), "localhost")
    assert gone.returncode != 0
    assert "unreachable" in gone.stdout


def scrape(url: str) -> Any:
    """GET ``url`` with the metrics bearer token, as Prometheus does."""
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    request = urllib.request.Request(url, headers=bearer)  # noqa: S310 - a local server
    return urllib.request.urlopen(request, timeout=10)  # noqa: S310 - a local server


def test_metrics_are_served_by_each_worker_and_never_through_nginx(
    nginx: Nginx, workers: list[DaphneWorker]
) -> None:
    for worker in workers:  # each worker, by its own address, as Prometheus scrapes it
        with scrape(f"{worker.url}/metrics") as response:
            assert response.status == 200
            assert b"# TYPE screenshare_live_sessions gauge" in response.read()
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(f"{nginx.url}/metrics")
    assert refused.value.code == 404
