"""The production topology on this machine: Debian's nginx with deploy/nginx.conf in front
of Daphne workers, plus a small HTTP client and WebSocket helpers that go through it.

deploy/nginx.conf is the file docker-compose.yml mounts into the official nginx image.
Here it is copied with only the lines marked ``# deploy-test: <what>`` rewritten (worker
addresses, listen address, TLS include, static root, access log) and included from a small
main configuration like the image's own, with every path in a temporary directory. With
TLS, deploy/nginx-tls.conf (what docker-compose.tls.yml adds) is copied the same way, with
a certificate for 127.0.0.1 made by trustme.
"""

import importlib
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from types import ModuleType

from websockets.asyncio.client import ClientConnection, connect

from tests.clients import NoRedirect, expect
from tests.conftest import require
from tests.leaks import SCANNER
from tests.processes import ROOT, DaphneWorker, ServesTheSite, free_port, wait_for_http

# settings.py's reads of the environment: env.str("NAME", ...), os.environ.get("NAME")...
SETTINGS = ROOT / "assistant_site" / "settings.py"
SETTING_READ = re.compile(
    r"""\b(?:env(?:\.\w+)?|os\.environ(?:\.get)?|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def settings_read() -> set[str]:
    """Every environment variable settings.py reads."""
    return set(SETTING_READ.findall(SETTINGS.read_text()))


NGINX = Path("/usr/sbin/nginx")
SITE_CONF = ROOT / "deploy" / "nginx.conf"
TLS_CONF = ROOT / "deploy" / "nginx-tls.conf"
MIME_TYPES = Path("/etc/nginx/mime.types")

MARKER = re.compile(r"#\s*deploy-test:\s*(?P<what>[\w-]+)\s*$")
# How often each marked line must occur in deploy/nginx.conf ("worker": at least once).
SINGLE_MARKERS = ("listen", "tls", "static", "access-log")
# The marked lines of deploy/nginx-tls.conf, once each.
TLS_MARKERS = ("tls-listen", "certificate", "certificate-key")


def need_module(name: str) -> ModuleType:
    """Import a test dependency; skip locally when it is missing, fail in CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"the Python package providing {name!r} is not installed")
        raise  # require() skipped or failed; never reached


def venv_path() -> str:
    """PATH with this interpreter's directory first, so that scripts' ``python`` is ours."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _render_marked_line(
    what: str,
    line: str,
    *,
    first: bool,
    workers: Sequence[str],
    listen: str,
    tls_dir: Path,
    static_root: Path,
    access_log: Path,
) -> list[str]:
    """The lines that replace one ``what``-marked line of deploy/nginx.conf.

    ``first`` says whether this is the first line with its marker: only the first
    ``worker`` line is kept (repeated for each address), later ones render to nothing.
    """
    indent = line[: len(line) - len(line.lstrip())]
    if what == "worker":
        if not first:
            return []
        params = re.fullmatch(r"\s*server\s+\S+(?P<rest>[^;]*);.*", line)
        if params is None:
            raise ValueError(f"not an upstream server line: {line!r}")
        return [f"{indent}server {address}{params['rest']};" for address in workers]
    if what == "listen":
        return [f"{indent}listen {listen};"]
    if what == "tls":
        pattern = re.fullmatch(r"\s*include\s+\S+/(?P<glob>[^/;]+);.*", line)
        if pattern is None:
            raise ValueError(f"not an include line: {line!r}")
        return [f"{indent}include {tls_dir}/{pattern['glob']};"]
    if what == "static":
        return [f"{indent}alias {static_root}/;"]
    if what == "access-log":
        fmt = re.search(r"access_log\s+\S+\s+(?P<format>[\w-]+)\s*;", line)
        if fmt is None:
            raise ValueError(f"access_log line without a log format: {line!r}")
        return [f"{indent}access_log {access_log} {fmt['format']};"]
    raise ValueError(f"unknown marker {what!r} in {SITE_CONF}")


def render_site_config(
    text: str,
    *,
    workers: Sequence[str],
    listen: str,
    tls_dir: Path,
    static_root: Path,
    access_log: Path,
) -> str:
    """deploy/nginx.conf with its marked lines pointed at this machine.

    Every ``worker`` line keeps its parameters (max_fails ...); the first one is repeated
    for each address in ``workers`` and the others are dropped. ``listen``, ``static`` and
    ``access-log`` lines get the given address and paths, the ``tls`` include the same
    pattern in ``tls_dir``. A marker that is missing or repeated is an error: the test must
    not silently run another configuration.
    """
    seen: dict[str, int] = {}
    out: list[str] = []
    for line in text.splitlines():
        match = MARKER.search(line)
        if match is None:
            out.append(line)
            continue
        what = match["what"]
        seen[what] = seen.get(what, 0) + 1
        out += _render_marked_line(
            what,
            line,
            first=seen[what] == 1,
            workers=workers,
            listen=listen,
            tls_dir=tls_dir,
            static_root=static_root,
            access_log=access_log,
        )
    counts = {what: seen.get(what, 0) for what in ("worker", *SINGLE_MARKERS)}
    if counts["worker"] < 1 or any(counts[what] != 1 for what in SINGLE_MARKERS):
        raise ValueError(f"{SITE_CONF} must mark its lines for the test once each: {counts}")
    return "\n".join(out) + "\n"


def render_tls_config(text: str, *, listen: str, certificate: Path, key: Path) -> str:
    """deploy/nginx-tls.conf on a local address with a local certificate and key; its
    ``listen`` keeps its parameters (ssl ...)."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for line in text.splitlines():
        match = MARKER.search(line)
        if match is None:
            out.append(line)
            continue
        what = match["what"]
        seen[what] = seen.get(what, 0) + 1
        directive = re.fullmatch(r"\s*(?P<name>\w+)\s+\S+(?P<rest>[^;]*);.*", line)
        if directive is None:
            raise ValueError(f"not a directive: {line!r}")
        name, rest = directive["name"], directive["rest"]
        if what == "tls-listen" and name == "listen":
            out.append(f"listen {listen}{rest};")
        elif what == "certificate" and name == "ssl_certificate":
            out.append(f"ssl_certificate {certificate};")
        elif what == "certificate-key" and name == "ssl_certificate_key":
            out.append(f"ssl_certificate_key {key};")
        else:
            raise ValueError(f"unexpected marker {what!r} on {line!r} in {TLS_CONF}")
    counts = {what: seen.get(what, 0) for what in TLS_MARKERS}
    if set(seen) != set(TLS_MARKERS) or any(count != 1 for count in counts.values()):
        raise ValueError(f"{TLS_CONF} must mark its lines for the test once each: {seen}")
    return "\n".join(out) + "\n"


@dataclass
class Certificate:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    ca: Path
    chain: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> "Certificate":
        """Make them with trustme in ``directory``."""
        trustme = need_module("trustme")
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="deploy-test CA")
        issued = ca.issue_cert("127.0.0.1", "localhost")
        files = cls(directory / "ca.pem", directory / "fullchain.pem", directory / "privkey.pem")
        ca.cert_pem.write_to_path(str(files.ca))
        files.chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(files.key))
        files.key.chmod(0o600)
        return files

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def main_config(workdir: Path, site: Path) -> str:
    """A main nginx.conf like the official image's, with every path under ``workdir``.

    One worker process, so that round robin alternates predictably between the workers.
    """
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the tmp files
    return (
        f"{user}worker_processes 1;\n"
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/error.log info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    include {MIME_TYPES};\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    keepalive_timeout 65;\n"
        f"    client_body_temp_path {workdir}/client_body;\n"
        f"    proxy_temp_path {workdir}/proxy;\n"
        f"    fastcgi_temp_path {workdir}/fastcgi;\n"
        f"    uwsgi_temp_path {workdir}/uwsgi;\n"
        f"    scgi_temp_path {workdir}/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )


@dataclass
class Nginx(ServesTheSite):
    """Debian's nginx in the foreground with deploy/nginx.conf, in front of ``workers``."""

    workdir: Path
    workers: Sequence[DaphneWorker]
    static_root: Path
    port: int = field(default_factory=free_port)
    # With TLS: deploy/nginx-tls.conf included too, the same server on this port over TLS.
    tls: bool = False
    tls_port: int = field(default_factory=free_port)
    certificate: Certificate | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def https_url(self) -> str:
        """The site's base URL through nginx over TLS (``tls`` only)."""
        assert self.tls
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def wss_url(self) -> str:
        """The share WebSocket through nginx over TLS (``tls`` only)."""
        assert self.tls
        return f"wss://127.0.0.1:{self.tls_port}/ws/share/"

    @property
    def access_log(self) -> Path:
        """nginx's access log (format "assistant": it names the upstream of each request)."""
        return self.workdir / "access.log"

    def write_config(self) -> Path:
        """Write the site and main configuration; the main file's path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        tls_dir = self.workdir / "tls"
        tls_dir.mkdir(exist_ok=True)
        if self.tls:
            self.certificate = Certificate.create(self.workdir / "certs")
            (tls_dir / "tls.conf").write_text(
                render_tls_config(
                    TLS_CONF.read_text(),
                    listen=f"127.0.0.1:{self.tls_port}",
                    certificate=self.certificate.chain,
                    key=self.certificate.key,
                )
            )
        site = self.workdir / "site.conf"
        site.write_text(
            render_site_config(
                SITE_CONF.read_text(),
                workers=[f"127.0.0.1:{worker.port}" for worker in self.workers],
                listen=f"127.0.0.1:{self.port}",
                tls_dir=tls_dir,
                static_root=self.static_root,
                access_log=self.access_log,
            )
        )
        main = self.workdir / "nginx.conf"
        main.write_text(main_config(self.workdir, site))
        return main

    def command(self, main: Path, *extra: str) -> list[str]:
        """The nginx command line for ``main``."""
        return [str(NGINX), "-p", str(self.workdir), "-c", str(main), "-e", "stderr", *extra]

    def start(self) -> "Nginx":
        """Check the configuration with ``nginx -t``, start nginx, wait until it answers."""
        main = self.write_config()
        checked = subprocess.run(self.command(main, "-t"), capture_output=True, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{checked.stderr.decode()}")
        with (self.workdir / "nginx.out").open("ab") as out:
            self.process = subprocess.Popen(
                self.command(main, "-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_http(f"{self.url}/nginx-health", self.process, timeout=15)
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGTERM; open WebSockets are cut), then scan the logs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.logs()

    def logs(self) -> str:
        """Error log, output and access log (scanned for the API key)."""
        parts = []
        for name in ("nginx.out", "error.log", "access.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace")
                SCANNER.scan("server-log", text)
                parts.append(f"--- nginx {name} ---\n{text}")
        return "\n".join(parts)

    def access_lines(self) -> list[str]:
        """The access log's lines so far."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text(errors="replace").splitlines()

    def upstream_of(self, request_line: str, after: int, timeout: float = 5.0) -> str:
        """The worker address that served the first ``request_line`` logged after line
        ``after`` (the last address when nginx had to try several)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.access_lines()[after:]:
                if f'"{request_line} HTTP/1.1"' in line:
                    upstream = re.search(r"upstream=(\S+(?:, \S+)*)", line)
                    assert upstream is not None, line
                    return upstream.group(1).split(", ")[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"{request_line!r} not in nginx's access log")
            time.sleep(0.05)


@dataclass
class Response:
    """One HTTP response, redirects not followed."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode()


@dataclass
class WebClient:
    """A browser's HTTP side: a cookie jar for one site, CSRF-protected form posts."""

    base_url: str
    cookies: dict[str, str] = field(default_factory=dict)
    # Sent with every request, e.g. forged proxy headers nginx must not pass on as they are.
    extra_headers: dict[str, str] = field(default_factory=dict)
    # The CAs an https base_url is checked against.
    ssl_context: ssl.SSLContext | None = None

    @property
    def cookie_header(self) -> str:
        """The Cookie header this browser sends."""
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(
        self, path: str, data: dict[str, str] | None = None, base_url: str | None = None
    ) -> Response:
        """GET ``path``, or POST ``data`` as a form; keep the cookies the response sets."""
        url = (base_url or self.base_url) + path
        headers = {**self.extra_headers, "Cookie": self.cookie_header}
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers.update({"Origin": self.base_url, "Referer": url})
        request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - local
        opener = urllib.request.build_opener(
            NoRedirect, urllib.request.HTTPSHandler(context=self.ssl_context)
        )
        try:
            with opener.open(request, timeout=15) as raw:
                response = Response(raw.status, raw.headers, raw.read())
        except urllib.error.HTTPError as raw:
            response = Response(raw.code, raw.headers, raw.read())
        SCANNER.scan("http", str(response.headers))
        SCANNER.scan("http", response.body)
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response

    def get(self, path: str) -> Response:
        """GET ``path``."""
        return self.request(path)

    def form_token(self, html: str) -> str:
        """The csrfmiddlewaretoken of the first form in ``html``."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert token is not None, html[:2000]
        return token.group(1)

    def login(self, username: str, password: str) -> Response:
        """Log in through the real log-in form, as a person would."""
        page = self.get("/accounts/login/")
        assert page.status == 200, page.status
        response = self.request(
            "/accounts/login/",
            {
                "csrfmiddlewaretoken": self.form_token(page.text),
                "username": username,
                "password": password,
                "next": "",
            },
        )
        assert response.status == 302, response.text[:2000]
        assert "sessionid" in self.cookies
        return response


async def open_share_socket(
    nginx: Nginx, client: WebClient, *, secure: bool = False
) -> ClientConnection:
    """The share WebSocket through nginx, with the browser's cookies and Origin; over TLS
    (wss://, the page's https:// Origin) when ``secure``."""
    ws = await connect(
        nginx.wss_url if secure else nginx.ws_url,
        origin=nginx.https_url if secure else nginx.url,  # type: ignore[arg-type]
        additional_headers={"Cookie": client.cookie_header},
        ssl=client.ssl_context if secure else None,
    )
    hello = await expect(ws, "hello")
    assert hello["voices"]
    return ws


def ws_connects(worker: DaphneWorker) -> int:
    """How many share WebSockets ``worker`` has accepted so far (Daphne's access log)."""
    return worker.log().count('"WSCONNECT /ws/share/"')


def holder_of_new_socket(
    workers: Sequence[DaphneWorker], before: Sequence[int], timeout: float = 5.0
) -> DaphneWorker:
    """The one worker that accepted a WebSocket since the counts ``before`` were taken."""
    deadline = time.monotonic() + timeout
    while True:
        grew = [w for w, n in zip(workers, before, strict=True) if ws_connects(w) > n]
        if len(grew) == 1:
            return grew[0]
        if len(grew) > 1 or time.monotonic() > deadline:
            raise AssertionError(f"expected one worker to accept the socket, got {grew}")
        time.sleep(0.05)
