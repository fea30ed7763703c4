"""deploy/k8s/ (kustomize) and the monitoring files against what the code and image say.

No cluster and no kustomize binary here: :func:`build` does what ``kustomize build`` does
with this kustomization (its resources, the namespace, the common labels), and every
object it yields is checked against the Kubernetes API schemas with kubernetes-validate.
The ServiceMonitor is the Prometheus Operator's custom resource, which those schemas do
not hold: it is checked against the fields the operator's CRD requires.
"""

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.urls import resolve

from sessions_app import metrics
from tests.deploy.stack import settings_read
from tests.processes import ROOT

K8S = ROOT / "deploy" / "k8s"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES_VERSION = "1.33.0"  # the oldest release the manifests promise to work on
CLUSTER_SCOPED = {"Namespace"}
SERVICE_MONITOR = {  # the part of monitoring.coreos.com/v1 ServiceMonitor these use
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(s|m)$"},
                            "bearerTokenSecret": {
                                "type": "object",
                                "required": ["name", "key"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "key": {"type": "string"},
                                },
                                "additionalProperties": False,
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
        },
    },
}


def build(directory: Path = K8S) -> list[dict[str, Any]]:
    """``kustomize build`` of the kustomization: its resources with its namespace and labels."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "labels", "resources"}
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        labels.update(entry["pairs"])
    objects = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((directory / resource).read_text()):
            built = copy.deepcopy(document)
            metadata = built.setdefault("metadata", {})
            if built["kind"] not in CLUSTER_SCOPED:
                metadata["namespace"] = kustomization["namespace"]
            metadata["labels"] = {**metadata.get("labels", {}), **labels}
            objects.append(built)
    return objects


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The object of ``kind`` (and ``name``)."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_every_manifest_is_valid_for_kubernetes() -> None:
    objects = build()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted([
        "Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Ingress", "Ingress",
        "Job", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor",
    ])  # fmt: skip
    for built in objects:
        if built["kind"] == "ServiceMonitor":
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(built, KUBERNETES_VERSION, strict=True)
            jsonschema.validate(built, SERVICE_MONITOR)
            continue
        kubernetes_validate.validate(built, KUBERNETES_VERSION, strict=True)
    assert {o["metadata"].get("namespace") for o in objects} == {"screenshare-assistant", None}


def test_a_broken_manifest_is_caught() -> None:
    """The validation can fail: a misspelt field and a wrong type are refused."""
    deployment = one(build(), "Deployment")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def dockerfile_port_and_command() -> tuple[int, list[str]]:
    """The port the image exposes and the command it runs."""
    text = DOCKERFILE.read_text()
    expose = re.search(r"^EXPOSE (\d+)$", text, re.M)
    command = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert expose is not None
    assert command is not None
    return int(expose.group(1)), json.loads(command.group(1))


def test_the_deployment_runs_the_image_as_the_dockerfile_says() -> None:
    objects = build()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port, command = dockerfile_port_and_command()
    assert container["command"] == command
    assert f"-p {port}" in " ".join(command)
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user "app"
    assert "useradd --system --uid 10001" in DOCKERFILE.read_text()
    assert container["resources"]["requests"]["cpu"]
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_the_probes_ask_healthz_as_the_site_serves_it() -> None:
    objects = build()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    allowed = one(objects, "ConfigMap")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == "http"
        assert resolve(get["path"]).url_name == "healthz"
        assert get["httpHeaders"] == [{"name": "Host", "value": allowed[0]}]  # Django's check
    # SIGTERM: Daphne ends its sessions within 30 s (compose's stop_grace_period), after
    # the preStop pause.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pause + 30


def test_every_setting_the_pods_get_exists_in_settings() -> None:
    objects = build()
    passed = set(one(objects, "ConfigMap")["data"]) | set(one(objects, "Secret")["stringData"])
    for kind in ("Deployment", "Job"):
        for container in one(objects, kind)["spec"]["template"]["spec"]["containers"]:
            passed |= {entry["name"] for entry in container.get("env", [])}
            refs = {
                ref.get("configMapRef", ref.get("secretRef"))["name"]
                for ref in container["envFrom"]
            }
            assert refs == {"screenshare-assistant"}
    assert sorted(passed - settings_read()) == []
    assert {"DATABASE_URL", "REDIS_URL", "METRICS_TOKEN", "DJANGO_SECRET_KEY"} <= passed
    monitor = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    assert monitor["bearerTokenSecret"] == {"name": "screenshare-assistant", "key": "METRICS_TOKEN"}
    assert monitor["path"] == "/metrics"


def test_the_migrate_job_runs_the_release_steps() -> None:
    job = one(build(), "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/app/deploy/release.sh"]
    release = (ROOT / "deploy" / "release.sh").read_text()
    for step in ("check --deploy", "migrate", "sweep_sessions"):
        assert step in release, step


def defined_metrics() -> set[str]:
    """The metric names sessions_app.metrics defines."""
    return {family.name for family in metrics.REGISTRY.collect()}


def test_every_panel_expression_names_a_metric_the_code_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {
        re.sub(r"_(total|bucket|count|sum|created)$", "", name)
        for expression in expressions
        for name in re.findall(r"\bscreenshare_[a-z_]+", expression)
    }
    assert named, expressions
    assert sorted(named - defined_metrics()) == []
    # What the dashboard must show: live sessions, ends by reason, hand-overs, latency
    # p50 and p99, tokens and cost per hour.
    text = "\n".join(expressions)
    for wanted in ("screenshare_live_sessions", "screenshare_sessions_ended_total",
                   "screenshare_upstream_events_total", "histogram_quantile(0.5",
                   "histogram_quantile(0.99", "screenshare_tokens_total",
                   "screenshare_cost_usd_total"):  # fmt: skip
        assert wanted in text, wanted


def test_the_monitoring_profile_scrapes_each_worker_with_the_token() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    config = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    image = "screenshare-assistant:latest"
    workers = [
        name for name, s in services.items() if s.get("image") == image and "command" not in s
    ]
    assert job["static_configs"][0]["targets"] == [f"{name}:8000" for name in workers]
    token_file = job["authorization"]["credentials_file"]
    mounted = {c["target"]: c["source"] for c in services["prometheus"]["configs"]}
    assert compose["configs"][mounted[token_file]]["content"] == "${METRICS_TOKEN:-}"
    volumes = " ".join(services["grafana"]["volumes"])
    assert "deploy/grafana-dashboard.json" in volumes
