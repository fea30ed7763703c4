"""Shared fixtures: users, a logged-in session cookie, the Gemini Live stand-in, a browser."""

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from sessions_app.protocol import Kind
from standin import Behaviour, StandIn, ThreadedStandIn
from tests.leaks import SCANNER, TEST_API_KEY, ScanningHandler, findings
from tests.processes import DaphneWorker, worker_env

CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session", autouse=True)
def _scan_for_the_api_key() -> Iterator[None]:
    """Scan every log record and test-client response of the run for the API key."""
    import logging

    from django.test.client import AsyncClient, Client

    # Importing the ASGI entry point runs django.setup() again, which reconfigures logging
    # and would drop the handlers installed here (and pytest's log capture) mid-run.
    import assistant_site.asgi  # noqa: F401

    handler = ScanningHandler(SCANNER)
    logging.getLogger().addHandler(handler)
    original_sync, original_async = Client.request, AsyncClient.request

    def scanned(response: Any) -> Any:
        """Scan a response's headers and (non-streamed) body."""
        SCANNER.scan("http", str(response.headers))
        if not getattr(response, "streaming", False):
            SCANNER.scan("http", response.content)
        return response

    def sync_request(self: Client, **request: Any) -> Any:
        return scanned(original_sync(self, **request))

    async def async_request(self: AsyncClient, **request: Any) -> Any:
        return scanned(await original_async(self, **request))

    Client.request = sync_request  # type: ignore[method-assign]
    AsyncClient.request = async_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        Client.request, AsyncClient.request = original_sync, original_async  # type: ignore[method-assign]
        logging.getLogger().removeHandler(handler)


def ran_the_whole_suite(session: pytest.Session, exitstatus: int) -> bool:
    """Whether every test of the suite was collected and run to the end: no paths below
    tests/, no -k, -m, --deselect, --lf or --collect-only, not stopped by -x, --maxfail or
    Ctrl-C."""
    config = session.config
    tests_dir = Path(__file__).resolve().parent
    invoked_in = config.invocation_params.dir
    paths = {(invoked_in / str(arg).split("::", 1)[0]).resolve() for arg in config.args}
    filtered = any(
        config.getoption(name, default=None)
        for name in ("keyword", "markexpr", "deselect", "lf", "collectonly", "setuponly")
    )
    stopped = bool(session.shouldstop or session.shouldfail)
    return (
        paths <= {tests_dir, tests_dir.parent}
        and all("::" not in str(arg) for arg in config.args)
        and not filtered
        and not stopped
        and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the API key appeared in anything it scanned (see tests/leaks.py).

    After a run of the whole suite, also if a channel was scanned too little to prove it;
    after part of the suite, only a leak fails it.
    """
    problems = findings(SCANNER, full_run=ran_the_whole_suite(session, exitstatus))
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "API key leak check failed", red=True)
        for problem in problems:
            reporter.write_line(problem)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the end-to-end tests last: they are the slowest, and they hold a browser."""
    items.sort(key=lambda item: "/e2e/" in str(item.path))


def require(available: bool, reason: str) -> None:
    """Skip when a real service is missing locally; in CI a missing service is a failure."""
    if available:
        return
    if CI:
        pytest.fail(f"{reason}; with CI=true this test must run")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _close_worker_thread_connections() -> Iterator[None]:
    """After each test, close the DB connection the async code left in asgiref's worker thread.

    ``database_sync_to_async`` closes a stale connection at the start of the next call on
    that thread; after a test's last call there is no next call, and PostgreSQL would then
    refuse to drop the test database while the connection is open.
    """
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    """A regular team member."""
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    """Another team member."""
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


def login_cookie(user: Any) -> str:
    """The Cookie header of a new browser logged in as ``user``."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


@pytest.fixture
def cookie(user: Any) -> str:
    """The Cookie header of ``user``'s browser."""
    return login_cookie(user)


@pytest.fixture(scope="session")
def standin_tls_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One CA and server certificate for every stand-in of the run."""
    return str(tmp_path_factory.mktemp("standin-tls"))


@pytest.fixture
async def standin(settings: Any, standin_tls_dir: str) -> AsyncIterator[StandIn]:
    """A Gemini Live stand-in over TLS, configured as the site's upstream (production path)."""
    async with StandIn(behaviour=Behaviour(), tls_dir=standin_tls_dir) as server:
        settings.GEMINI_API_KEY = TEST_API_KEY
        settings.GEMINI_API_BASE_URL = server.base_url
        settings.GEMINI_CA_BUNDLE = str(server.ca_path)
        settings.GEMINI_RECONNECT_DELAYS_S = [0.05, 0.1, 0.2]
        yield server


@pytest.fixture
def upstream(standin_tls_dir: str) -> Iterator[ThreadedStandIn]:
    """A Gemini Live stand-in in a thread, for worker processes to connect to."""
    with ThreadedStandIn(behaviour=Behaviour(), tls_dir=standin_tls_dir) as server:
        yield server


@pytest.fixture
def redis_url() -> str:
    """The real Redis the workers share."""
    url = os.environ.get("REDIS_URL", "")
    require(bool(url), "REDIS_URL is not set")
    return url


def upstream_worker_env(upstream: ThreadedStandIn, **overrides: str) -> dict[str, str]:
    """A production-like worker's environment (no debug), with the stand-in as upstream."""
    return worker_env(
        None,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        GEMINI_API_KEY=TEST_API_KEY,
        GEMINI_API_BASE_URL=upstream.base_url,
        GEMINI_CA_BUNDLE=str(upstream.ca_path),
        **overrides,
    )


@contextlib.contextmanager
def running_workers(
    env: dict[str, str], log_dir: Path, *names: str
) -> Iterator[list[DaphneWorker]]:
    """Daphne worker processes called ``names``, stopped after; their logs shown on failure."""
    started: list[DaphneWorker] = []
    try:
        for name in names:
            started.append(DaphneWorker(name, env, log_dir / f"daphne-{name}.log").start())
        yield started
    finally:
        for worker in started:
            worker.stop()
            print(f"--- worker {worker.name} log ---\n{worker.log()}")  # noqa: T201 - shown on failure


class Browser:
    """A browser's WebSocket through the whole ASGI stack: origin check, auth, routing."""

    def __init__(self, cookie: str | None = None, origin: str = "http://testserver") -> None:
        from assistant_site.asgi import application

        headers = [(b"origin", origin.encode()), (b"user-agent", b"pytest-browser/1.0")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.ws = WebsocketCommunicator(application, "/ws/share/", headers=headers)
        self.audio: list[bytes] = []
        self.messages: list[dict[str, Any]] = []
        self.audio_frames = 0  # model audio frames of this session, acked like the page

    async def connect(self) -> dict[str, Any]:
        """Open the socket and return the server's hello."""
        connected, _ = await self.ws.connect(timeout=5)
        assert connected
        return await self.expect("hello")

    async def send(self, **message: Any) -> None:
        """Send a JSON control message."""
        await self.ws.send_to(text_data=json.dumps(message))

    async def send_media(self, kind: Kind, payload: bytes) -> None:
        """Send a binary media frame."""
        await self.ws.send_to(bytes_data=bytes((kind,)) + payload)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next JSON message; binary audio is collected into ``audio`` on the way."""
        while True:
            message = await self._take(await self.ws.receive_output(timeout))
            if message is not None:
                return message

    async def read_waiting(self) -> None:
        """Read whatever the server has sent so far, without waiting for more."""
        while not self.ws.output_queue.empty():
            await self._take(await self.ws.receive_output(1))

    async def _take(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """Keep one output of the server: a JSON message (returned), or audio (acked)."""
        if raw["type"] == "websocket.close":
            return {"type": "__closed__", "code": raw.get("code")}
        SCANNER.scan("ws", raw.get("text") or raw.get("bytes") or b"")
        if raw.get("bytes") is not None:
            assert raw["bytes"][0] == Kind.AUDIO
            self.audio.append(raw["bytes"][1:])
            self.audio_frames += 1
            await self.send(type="ack", audio=self.audio_frames)
            return None
        message: dict[str, Any] = json.loads(raw["text"])
        self.messages.append(message)
        if message["type"] == "status" and message["state"] in ("connecting", "ended"):
            self.audio_frames = 0  # the page counts each session's frames from zero
        return message

    async def expect(self, type_: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Read until a message of ``type_`` (with ``fields``) arrives and return it."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if message["type"] == type_ and all(message.get(k) == v for k, v in fields.items()):
                    return message
                if message["type"] == "__closed__":
                    raise AssertionError(f"socket closed ({message['code']}) waiting for {type_}")

    async def expect_close(self, timeout: float = 5.0) -> int:
        """Read until the server closes the socket; return the close code."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if message["type"] == "__closed__":
                    return message["code"]

    async def start(self, mode: str = "audio", voice: str = "Puck") -> dict[str, Any]:
        """Start a live session and wait until it is live."""
        await self.send(type="start", mode=mode, voice=voice)
        return await self.expect("status", state="live", timeout=10)

    def transcript(self, role: str, turn: int) -> str:
        """The streamed fragments of one speaker's turn, joined."""
        return "".join(
            m["text"]
            for m in self.messages
            if m["type"] == "transcript" and m["role"] == role and m.get("turn") == turn
        )

    async def close(self) -> None:
        """Disconnect like a closed tab."""
        await self.ws.disconnect()
