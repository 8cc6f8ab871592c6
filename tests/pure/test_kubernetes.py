"""Static checks of deploy/kubernetes: every rendered manifest is valid against the Kubernetes schemas of a pinned
version, and the manifests agree with the real settings, routes, port and grace periods.

The directories are rendered here as `kubectl apply -k` would (resources, directories of resources, JSON 6902
patches): that is all they use, so no kustomize binary is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from app.routes.system import system_routes
from ocrserve.settings import ENV_PREFIX, Settings
from tests.pure.test_deployment import SETTINGS, VARIABLE

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"
WORKER_GRACE_MARGIN_S = 60  # what a worker needs past its last job's time limit to report and exit
API_GRACE_MARGIN_S = 10
# settings the manifests set to something else than the default, on purpose
OVERRIDES = {"OCRSERVE_REDIS_URL", "OCRSERVE_LOG_FORMAT"}


def _documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def render(directory: Path) -> list[dict]:
    """The resources `kubectl apply -k directory` would apply."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(render(path) if path.is_dir() else _documents(path))
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        matches = [r for r in resources if r["kind"] == target["kind"] and r["metadata"]["name"] == target["name"]]
        assert len(matches) == 1, f"patch target {target} matches {len(matches)} resources"
        patched = jsonpatch.apply_patch(matches[0], yaml.safe_load(patch["patch"]))
        resources[resources.index(matches[0])] = patched
    return resources


@pytest.fixture(scope="module", params=["base", "gpu"])
def rendered(request: pytest.FixtureRequest) -> list[dict]:
    return render(KUBERNETES / request.param)


def _one(resources: list[dict], kind: str, name: str) -> dict:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _containers(resources: list[dict]) -> Iterator[tuple[dict, dict]]:
    for resource in resources:
        if resource["kind"] in ("Deployment", "StatefulSet"):
            pod = resource["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield resource, container


def _settings(resources: list[dict]) -> dict[str, str]:
    return _one(resources, "ConfigMap", "ocrserve-settings")["data"]


def test_every_manifest_is_valid_for_the_pinned_kubernetes(rendered: list[dict]) -> None:
    optional = _documents(KUBERNETES / "ingress.yaml")
    for resource in [*rendered, *optional]:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_every_resource_is_in_the_namespace(rendered: list[dict]) -> None:
    for resource in rendered:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "ocrserve", resource["metadata"]["name"]


def test_settings_are_real_and_their_defaults_true(rendered: list[dict]) -> None:
    defaults = Settings()
    for name, value in _settings(rendered).items():
        assert name in SETTINGS, f"{name} is not a setting"
        field = name.removeprefix(ENV_PREFIX).lower()
        if name in OVERRIDES:
            continue
        assert value == str(getattr(defaults, field)), f"{name}={value} but the default is {getattr(defaults, field)}"
    for _, container in _containers(rendered):
        for variable in container.get("env", []):
            if variable["name"].startswith(ENV_PREFIX):
                assert variable["name"] in SETTINGS, variable["name"]
    for path in KUBERNETES.rglob("*.yaml"):
        assert set(VARIABLE.findall(path.read_text(encoding="utf-8"))) <= SETTINGS, path


def test_no_key_is_shipped_and_only_the_api_reads_them(rendered: list[dict]) -> None:
    """The keys come from a Secret the operator creates: none in the manifests (no well-known defaults), and
    the workers, which serve no HTTP, do not get them."""
    assert not [r for r in rendered if r["kind"] == "Secret"]
    assert not {"OCRSERVE_API_KEYS", "OCRSERVE_ADMIN_KEYS"} & set(_settings(rendered))
    sources = {
        resource["metadata"]["name"]: [next(iter(source.values()))["name"] for source in container.get("envFrom", [])]
        for resource, container in _containers(rendered)
    }
    assert sources == {
        "ocrserve-api": ["ocrserve-settings", "ocrserve-keys"],
        "ocrserve-worker": ["ocrserve-settings"],
        "ocrserve-redis": [],
    }


def test_only_the_api_and_the_workers_reach_redis(rendered: list[dict]) -> None:
    policy = _one(rendered, "NetworkPolicy", "ocrserve-redis")["spec"]
    redis = _one(rendered, "StatefulSet", "ocrserve-redis")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"] == redis and policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    allowed = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    pods = [
        _one(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in ("ocrserve-api", "ocrserve-worker")
    ]
    assert allowed == pods and rule["ports"] == [{"port": 6379, "protocol": "TCP"}]


def test_api_port_probes_and_replicas(rendered: list[dict]) -> None:
    api = _one(rendered, "Deployment", "ocrserve-api")
    assert api["spec"]["replicas"] >= 2
    (container,) = api["spec"]["template"]["spec"]["containers"]
    port = Settings().port
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(port)]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    routes = {path for route in system_routes for path in route.paths}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert {"/health", "/ping"} <= routes
    service = _one(rendered, "Service", "ocrserve")
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
    assert service["spec"]["selector"] == api["spec"]["template"]["metadata"]["labels"]


def test_grace_periods_follow_the_time_limits(rendered: list[dict]) -> None:
    settings = _settings(rendered)
    worker = _one(rendered, "Deployment", "ocrserve-worker")["spec"]["template"]["spec"]
    api = _one(rendered, "Deployment", "ocrserve-api")["spec"]["template"]["spec"]
    job_time_limit = int(settings.get("OCRSERVE_JOB_TIME_LIMIT", Settings().job_time_limit))
    shutdown_grace = int(settings.get("OCRSERVE_SHUTDOWN_GRACE", Settings().shutdown_grace))
    assert worker["terminationGracePeriodSeconds"] == job_time_limit + WORKER_GRACE_MARGIN_S
    assert api["terminationGracePeriodSeconds"] == shutdown_grace + API_GRACE_MARGIN_S


def test_workers_and_apis_have_disruption_budgets(rendered: list[dict]) -> None:
    for name in ("ocrserve-api", "ocrserve-worker"):
        budget = _one(rendered, "PodDisruptionBudget", name)
        labels = _one(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"] == labels


def test_redis_keeps_an_append_only_file_on_a_claim(rendered: list[dict]) -> None:
    redis = _one(rendered, "StatefulSet", "ocrserve-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--appendonly") + 1] == "yes"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert container["volumeMounts"] == [{"name": claim["metadata"]["name"], "mountPath": "/data"}]
    url = _settings(rendered)["OCRSERVE_REDIS_URL"]
    assert url == f"redis://{redis['spec']['serviceName']}:6379/0"


def test_pods_run_as_non_root(rendered: list[dict]) -> None:
    for resource, container in _containers(rendered):
        pod = resource["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, resource["metadata"]["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_gpu_workers_take_one_gpu_each_and_cpu_workers_none() -> None:
    for flavour, device, image, gpus in (("base", "cpu", "ocrserve:cpu", None), ("gpu", "cuda", "ocrserve:worker", 1)):
        worker = _one(render(KUBERNETES / flavour), "Deployment", "ocrserve-worker")
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        assert container["image"] == image, flavour
        assert container["env"][0] == {"name": "OCRSERVE_DEVICE", "value": device}, flavour
        assert container["resources"]["limits"].get("nvidia.com/gpu") == gpus, flavour
