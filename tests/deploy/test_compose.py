"""docker-compose.yml, the Dockerfile, deploy/nginx.conf and .env.example agree with the
Compose Specification, with each other and with assistant_site/settings.py.

There is no Docker engine here, so the compose file is checked statically: against the
Compose Specification's JSON schema (deploy/compose-spec.schema.json, the copy vendored by
check-jsonschema 0.39.0 as "vendor.compose-spec"; Apache-2.0, github.com/compose-spec),
and for the topology the issue asks for. deploy/nginx.conf itself runs in
test_nginx_deploy.py.
"""

import copy
import fnmatch
import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.deploy.stack import SITE_CONF, TLS_CONF, need_module, settings_read, venv_path
from tests.processes import ROOT

COMPOSE = ROOT / "docker-compose.yml"
TLS_OVERRIDE = ROOT / "docker-compose.tls.yml"
SCHEMA = ROOT / "deploy" / "compose-spec.schema.json"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

APP_IMAGE = "screenshare-assistant:latest"
COMPOSE_ONLY = "docker-compose.yml only"  # the title of .env.example's last section

# env.str("NAME" ...), env.db_url("NAME" ...), env("NAME"), os.environ.get("NAME"), ...
ENV_LINE = re.compile(r"^(?P<commented>#\s?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
SECTION = re.compile(r"^# --- (?P<title>.+?) -+$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and merge keys resolved)."""
    yaml = need_module("yaml")
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services by name."""
    return dict(compose["services"])


def one_shot(compose: dict[str, Any]) -> set[str]:
    """Services others wait for to exit successfully (migrate)."""
    return {
        name
        for service in services(compose).values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }


def web_workers(compose: dict[str, Any]) -> set[str]:
    """Services running the site's image with its default command (Daphne)."""
    return {
        name
        for name, service in services(compose).items()
        if service.get("image") == APP_IMAGE and "command" not in service
    }


def upstream_servers() -> list[tuple[str, int]]:
    """The (host, port) of every server in deploy/nginx.conf's upstream block."""
    block = re.search(r"upstream\s+daphne\s*\{(?P<body>.*?)\}", SITE_CONF.read_text(), re.S)
    assert block is not None, "deploy/nginx.conf has no 'upstream daphne' block"
    return [
        (host, int(port))
        for host, port in re.findall(r"^\s*server\s+([\w.-]+):(\d+)", block["body"], re.M)
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema = need_module("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(compose)
    ]
    assert errors == []
    # The validator does reject what the specification forbids.
    broken = copy.deepcopy(compose)
    broken["services"]["web1"]["healthcheck"]["intervall"] = "15s"
    broken["services"]["nginx"]["depends_on"]["web1"]["condition"] = "service_ready"
    assert len(list(validator.iter_errors(broken))) >= 2


def compose_validator() -> Any:
    """A validator for the Compose Specification's JSON schema."""
    jsonschema = need_module("jsonschema")
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def test_the_tls_override_gives_nginx_the_certificate_and_port_443(
    compose: dict[str, Any],
) -> None:
    yaml = need_module("yaml")
    override = yaml.safe_load(TLS_OVERRIDE.read_text())
    validator = compose_validator()
    assert [error.message for error in validator.iter_errors(override)] == []
    assert set(override) == {"services"}
    assert set(override["services"]) == {"nginx"}
    nginx = override["services"]["nginx"]
    assert set(nginx) == {"ports", "volumes"}
    assert nginx["ports"] == ["443:443"]
    tls_text = TLS_CONF.read_text()
    assert re.search(r"^listen 443 ssl;", tls_text, re.M)
    mounts = [volume.split(":") for volume in nginx["volumes"]]
    assert all(len(mount) == 3 and mount[2] == "ro" for mount in mounts), mounts
    # deploy/nginx-tls.conf lands where deploy/nginx.conf's server block includes from ...
    include = re.search(
        r"^\s*include\s+(\S+);\s*#\s*deploy-test:\s*tls$", SITE_CONF.read_text(), re.M
    )
    assert include is not None
    snippet = [target for source, target, _ in mounts if source == "./deploy/nginx-tls.conf"]
    assert len(snippet) == 1
    assert fnmatch.fnmatch(snippet[0], include[1])
    # ... the base file mounts nothing else there ...
    base_targets = [volume.split(":")[1] for volume in services(compose)["nginx"]["volumes"]]
    assert not [target for target in base_targets if fnmatch.fnmatch(target, include[1])]
    # ... and the certificate and key it names are in the read-only certs mount.
    paths = re.findall(r"^ssl_certificate(?:_key)?\s+(\S+);", tls_text, re.M)
    assert len(paths) == 2
    certs = {target: source for source, target, _ in mounts if source != "./deploy/nginx-tls.conf"}
    assert {str(Path(path).parent) for path in paths} == set(certs)
    assert list(certs.values()) == ["./certs"]
    # The key never goes into git or into the image's build context.
    assert "/certs/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "certs" in (ROOT / ".dockerignore").read_text().splitlines()
    # Merged into the base file as compose does (lists appended), still valid.
    merged = copy.deepcopy(compose)
    merged["services"]["nginx"]["ports"] += nginx["ports"]
    merged["services"]["nginx"]["volumes"] += nginx["volumes"]
    assert [error.message for error in validator.iter_errors(merged)] == []


def test_nginx_sends_to_every_web_worker_on_the_port_it_listens_on(
    compose: dict[str, Any],
) -> None:
    servers = upstream_servers()
    assert len(servers) >= 2
    all_services = services(compose)
    for host, port in servers:
        assert host in all_services, f"nginx upstream {host}:{port} is not a compose service"
        assert str(port) in [str(exposed) for exposed in all_services[host].get("expose", [])]
    # Every Daphne service is in the upstream (a worker added to compose only gets nothing).
    assert {host for host, _ in servers} == web_workers(compose)
    # ... and the image's Daphne listens there on every interface.
    cmd = json.loads(dict(dockerfile_instructions())["CMD"])
    assert cmd[cmd.index("-b") + 1] == "0.0.0.0"  # noqa: S104 - inside its container
    assert {port for _, port in servers} == {int(cmd[cmd.index("-p") + 1])}
    # nginx starts after the workers are healthy (it resolves their names at start-up).
    depends = all_services["nginx"]["depends_on"]
    assert {name: depends[name]["condition"] for name in web_workers(compose)} == {
        name: "service_healthy" for name in web_workers(compose)
    }


def test_websockets_outlast_the_longest_session() -> None:
    ws = re.search(r"location /ws/ \{(?P<body>.*?)\}", SITE_CONF.read_text(), re.S)
    assert ws is not None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(rf"{directive}\s+(\d+)([smhd]);", ws["body"])
        assert value is not None, directive
        assert int(value[1]) * units[value[2]] > settings.SHARE_MAX_SESSION_S
    assert re.search(r"proxy_buffering\s+off;", ws["body"])


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    once = one_shot(compose)
    assert once == {"migrate"}
    for name, service in services(compose).items():
        check = service.get("healthcheck") or {}
        if name in once:
            # Runs for seconds; its exit status is what the workers wait for.
            assert check == {"disable": True}, name
            assert service.get("restart") == "no", name
            continue
        assert not check.get("disable"), name
        test = check.get("test")
        assert isinstance(test, list), name
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert len(test) > 1, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in once else "service_healthy"
            assert condition["condition"] == expected, (name, dependency)
    # Each check asks what the issue asks for.
    checks = {
        name: " ".join(service["healthcheck"]["test"])
        for name, service in services(compose).items()
        if name not in once
    }
    assert "pg_isready" in checks["postgres"]
    assert "redis-cli ping" in checks["redis"]
    assert "/nginx-health" in checks["nginx"]
    for name in web_workers(compose):
        assert checks[name] == "CMD /app/deploy/healthcheck.sh 8000"
        assert services(compose)[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    healthcheck_sh = (ROOT / "deploy" / "healthcheck.sh").read_text()
    assert "/healthz" in healthcheck_sh
    assert "urllib.request" in healthcheck_sh


def env_files(service: dict[str, Any]) -> list[str]:
    """The paths of a service's env_file (a string, a list of strings or of {path: ...})."""
    value = service.get("env_file") or []
    entries = [value] if isinstance(value, str | dict) else list(value)
    return [entry["path"] if isinstance(entry, dict) else entry for entry in entries]


def test_the_services_that_run_the_site_read_the_env_file(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    app = {name for name, service in all_services.items() if service.get("image") == APP_IMAGE}
    assert app == web_workers(compose) | {"migrate"}
    assert len(web_workers(compose)) >= 2
    for name in sorted(app):
        # .env, required: a missing file stops `docker compose up` instead of starting the
        # site without its secret key and host names.
        assert env_files(all_services[name]) == [".env"], name
        entry = all_services[name]["env_file"]
        assert not (isinstance(entry, dict) and entry.get("required") is False), name
        # compose's own values (database, Redis, proxy count) come on top of .env's.
        environment = all_services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://"), name
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
    # The other services get only what they need, not the site's secrets.
    for name in sorted(set(all_services) - app):
        assert env_files(all_services[name]) == [], name
    assert (ROOT / ".gitignore").read_text().splitlines().count(".env") == 1


def test_the_web_image_runs_as_an_unprivileged_user(compose: dict[str, Any]) -> None:
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the Dockerfile never switches to an unprivileged user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert "RUN" not in keywords[keywords.index("USER") :]
    pip = [arguments for keyword, arguments in instructions if "pip install" in arguments]
    assert pip
    assert all("-c constraints.txt" in arguments for arguments in pip)
    cmd = json.loads(dict(instructions)["CMD"])  # exec form: Daphne gets SIGTERM itself
    assert cmd[:4] == ["python", "-m", "assistant_site.serve", "-b"]  # Daphne on uvloop
    assert cmd[-1] == "assistant_site.asgi:application"
    for name, service in services(compose).items():
        if service.get("image") == APP_IMAGE:
            assert str(service.get("user", "app")).split(":")[0] not in ("root", "0"), name
            assert service.get("build") == ".", name


def test_volumes_for_the_database_and_the_static_files(compose: dict[str, Any]) -> None:
    # The monitoring profile's own: Prometheus's samples and Grafana's state.
    assert set(compose["volumes"]) == {"pgdata", "static", "prometheus", "grafana"}
    all_services = services(compose)
    assert "pgdata:/var/lib/postgresql/data" in all_services["postgres"]["volumes"]
    image_env = dict(
        pair.split("=", 1)
        for keyword, arguments in dockerfile_instructions()
        if keyword == "ENV"
        for pair in arguments.split()
    )
    static_root = image_env["DJANGO_STATIC_ROOT"]
    # collectstatic writes where nginx reads (read-only), at the path its alias names.
    assert f"static:{static_root}" in all_services["migrate"]["volumes"]
    assert f"static:{static_root}:ro" in all_services["nginx"]["volumes"]
    assert re.search(rf"alias {re.escape(static_root)}/;", SITE_CONF.read_text())
    assert (
        "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in all_services["nginx"]["volumes"]
    )
    release = (ROOT / "deploy" / "release.sh").read_text()
    for step in ("migrate --noinput", "collectstatic --noinput", "sweep_sessions"):
        assert f"python manage.py {step}" in release
    assert all_services["migrate"]["command"] == ["/app/deploy/release.sh"]


@dataclass(frozen=True)
class EnvEntry:
    """One variable line of .env.example."""

    section: str
    name: str
    value: str
    commented: bool


def env_example() -> list[EnvEntry]:
    """The variables of .env.example, in order, with their section."""
    section = ""
    entries = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if heading := SECTION.match(line):
            section = heading["title"]
        elif entry := ENV_LINE.match(line):
            entries.append(
                EnvEntry(section, entry["name"], entry["value"], bool(entry["commented"]))
            )
    return entries


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    read = settings_read()
    assert len(read) > 40, read  # the pattern still finds settings.py's reads
    entries = env_example()
    names = [entry.name for entry in entries]
    assert len(names) == len(set(names)), "a variable is listed twice"
    for_django = {entry.name for entry in entries if COMPOSE_ONLY not in entry.section}
    compose_only = {entry.name for entry in entries if COMPOSE_ONLY in entry.section}
    assert sorted(read - for_django) == [], "settings.py reads these; document them"
    assert sorted(for_django - read) == [], "settings.py does not read these"
    assert compose_only, "the compose-only section is missing"
    assert not compose_only & read
    compose_text = COMPOSE.read_text()
    for name in compose_only:
        assert f"${{{name}" in compose_text, f"{name} is not used by docker-compose.yml"
    # Every variable sits under a section heading, and a comment opens each group of them.
    assert all(entry.section for entry in entries)
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if ENV_LINE.match(line) and not ENV_LINE.match(lines[index - 1]):
            above = lines[index - 1]
            assert above.startswith("#"), f"{line!r} has no comment"
            assert not SECTION.match(above), f"{line!r} has no comment"


def env_from_example(*, uncomment: bool) -> dict[str, str]:
    """The environment .env.example gives Django: its active lines, or every line."""
    env = {
        entry.name: entry.value
        for entry in env_example()
        if COMPOSE_ONLY not in entry.section and (uncomment or not entry.commented)
    }
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)  # the example's is a placeholder
    env["GEMINI_API_KEY"] = "operator-gemini-key"  # the example's is empty: fill it in
    return env


@pytest.mark.parametrize("uncomment", [False, True], ids=["as-shipped", "every-line-uncommented"])
def test_env_example_values_pass_the_deployment_checks(uncomment: bool, tmp_path: Path) -> None:
    env = env_from_example(uncomment=uncomment)
    env.update({"PATH": venv_path(), "HOME": str(tmp_path)})
    result = subprocess.run(
        ["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_a_gemini_key_production_start_up_refuses_unless_the_demo_is_asked_for(
    tmp_path: Path,
) -> None:
    shipped = {entry.name: entry for entry in env_example()}["GEMINI_API_KEY"]
    assert (shipped.commented, shipped.value) == (False, "")
    env = {
        **env_from_example(uncomment=False),
        "GEMINI_API_KEY": "",
        "PATH": venv_path(),
        "HOME": str(tmp_path),
    }
    env.pop("GEMINI_OFFLINE_DEMO", None)

    def check(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["python", "manage.py", "check"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = check()
    assert refused.returncode != 0
    assert "GEMINI_API_KEY is not set" in refused.stderr
    assert "GEMINI_OFFLINE_DEMO=1" in refused.stderr
    assert check(GEMINI_OFFLINE_DEMO="1").returncode == 0
    assert check(DJANGO_DEBUG="1").returncode == 0  # make run: the offline demo, no key


def test_the_placeholder_secret_key_of_env_example_stops_start_up(tmp_path: Path) -> None:
    shipped = {entry.name: entry for entry in env_example()}["DJANGO_SECRET_KEY"]
    assert not shipped.commented
    env = {
        **env_from_example(uncomment=False),
        "DJANGO_SECRET_KEY": shipped.value,
        "PATH": venv_path(),
        "HOME": str(tmp_path),
    }
    refused = subprocess.run(
        ["python", "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY is still the placeholder from .env.example" in refused.stderr
    # Development mode (make run never reads .env) is not refused.
    debug = subprocess.run(
        ["python", "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert debug.returncode == 0, debug.stdout + debug.stderr


def test_the_image_leaves_out_the_stand_in_and_its_dependencies() -> None:
    """The stand-in is test and demo equipment: not in the build context, not installed."""
    import tomllib

    assert "standin" in (ROOT / ".dockerignore").read_text().splitlines()
    copied = re.findall(r"^COPY\s+(.+?)\s+\S+$", (ROOT / "Dockerfile").read_text(), re.M)
    assert not [line for line in copied if "standin" in line]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("trustme")]
    assert project["optional-dependencies"]["standin"] == ["trustme>=1.2"]
    assert any("[standin]" in dep for dep in project["optional-dependencies"]["test"])
