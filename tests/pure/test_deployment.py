"""Static checks of the Docker deployment files (compose.yaml, Dockerfile, .env.example).

Nothing here builds or starts a container: CI has no Docker daemon. These tests catch the mistakes that are easy
to make when a setting or a service changes: a typo'd or removed `OCRSERVE_*` variable, a setting missing from
.env.example, a lost healthcheck, GPU reservation or volume.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ocrserve.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"

# Variables compose.yaml interpolates for itself that are not ocrserve settings.
COMPOSE_ONLY = {"OCRSERVE_MODEL_DIR"}
SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.__struct_fields__}
VARIABLE = re.compile(r"\bOCRSERVE_[A-Z0-9_]*[A-Z0-9]\b")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def stages() -> dict[str, str]:
    """Dockerfile stage name -> the text of that stage (FROM line included)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=FROM\s)", text)
    found = {}
    for part in parts[1:]:
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", part, re.IGNORECASE)
        assert match, part
        found[(match.group(1) or f"#{len(found)}").lower()] = part
    return found


def _instructions(stage: str, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction in a stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", stage)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.upper().startswith(keyword + " ")]


def _env_map(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a named volume or a host path, which may hold `${VAR:-default}`)."""
    found = {}
    for volume in service["volumes"]:
        match = re.fullmatch(r"(.+):(/[^:]*)(?::(?:ro|rw))?", volume)
        assert match, volume
        found[match.group(2)] = match.group(1)
    return found


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


# ---- compose.yaml ----------------------------------------------------------------------------------------------


def test_compose_services(services: dict) -> None:
    assert {"redis", "api", "worker", "worker-cpu"} <= set(services)
    assert _command(services["api"])[0] == "serve"
    assert _command(services["worker"])[0] == "worker"
    assert _command(services["worker-cpu"])[0] == "worker"
    # the CPU worker only runs with its profile; the GPU worker and the CPU worker are never on together by default
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert "cpu" not in services["worker"].get("profiles", [])
    for name in ("api", "worker", "worker-cpu"):
        assert services[name]["build"]["target"] in {"api", "worker", "cpu"}
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert _env_map(services[name])["OCRSERVE_REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["env_file"] == [{"path": ".env", "required": False}]
    assert services["api"]["build"]["target"] == "api"
    assert services["worker"]["build"]["target"] == "worker"
    assert services["worker-cpu"]["build"]["target"] == "cpu"


def test_redis_persists_and_has_healthcheck(compose: dict, services: dict) -> None:
    redis = services["redis"]
    image = redis["image"]
    assert image.startswith("redis:7") and ":latest" not in image
    command = _command(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert _mounts(redis)["/data"] in compose["volumes"]


def test_api_port_and_healthcheck(services: dict) -> None:
    api = services["api"]
    assert api["ports"] == ["${OCRSERVE_PORT:-8000}:8000"]
    command = _command(api)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"  # flags win over a port set in .env
    test = " ".join(api["healthcheck"]["test"])
    assert "python" in test and "http://127.0.0.1:8000/health" in test


def test_workers_cache_weights_and_stop_gracefully(compose: dict, services: dict) -> None:
    for name in ("worker", "worker-cpu"):
        worker = services[name]
        mounts = _mounts(worker)
        assert mounts["/cache/huggingface"] in compose["volumes"]  # a named volume, not a host path
        assert mounts["/models"] == "${OCRSERVE_MODEL_DIR:-./models}"
        assert _env_map(worker)["HF_HOME"] == "/cache/huggingface"
        assert worker["stop_signal"] == "SIGTERM"
        grace = re.fullmatch(r"(\d+)([sm])", worker["stop_grace_period"])
        assert grace and int(grace.group(1)) * (60 if grace.group(2) == "m" else 1) >= 120
    assert "deploy" not in services["worker-cpu"]


def test_gpu_worker_reserves_a_gpu(services: dict) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


# ---- variables -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, DOCKERFILE, ENV_EXAMPLE], ids=lambda path: path.name)
def test_every_ocrserve_variable_is_a_setting(path: Path) -> None:
    named = set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    assert named, f"{path.name} names no OCRSERVE_* variable"
    unknown = named - SETTINGS - COMPOSE_ONLY
    assert not unknown, f"{path.name} names variables that are not settings: {sorted(unknown)}"


def _documented_defaults() -> dict[str, str]:
    """The first `OCRSERVE_X=value` line (commented or not) for each variable in .env.example."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"#?\s*(OCRSERVE_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            found.setdefault(match.group(1), match.group(2))
    return found


def _as_env(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def test_env_example_lists_every_setting_with_its_default() -> None:
    documented = _documented_defaults()
    missing = SETTINGS - set(documented)
    assert not missing, f".env.example lacks {sorted(missing)}"
    defaults = msgspec.structs.asdict(Settings())
    wrong = {
        ENV_PREFIX + name.upper(): (documented[ENV_PREFIX + name.upper()], _as_env(value))
        for name, value in defaults.items()
        if documented[ENV_PREFIX + name.upper()] != _as_env(value)
    }
    assert not wrong, f".env.example shows wrong defaults (shown, real): {wrong}"


def test_env_example_selects_the_gpu_profile() -> None:
    assert re.search(r"(?m)^COMPOSE_PROFILES=gpu$", ENV_EXAMPLE.read_text(encoding="utf-8"))


# ---- Dockerfile ------------------------------------------------------------------------------------------------


def test_dockerfile_targets(stages: dict[str, str]) -> None:
    assert {"build", "api", "worker", "cpu"} <= set(stages)
    for target in ("api", "worker", "cpu"):
        stage = stages[target]
        users = _instructions(stage, "USER")
        assert users and users[-1] not in {"root", "0"}, f"{target} runs as root"
        assert _instructions(stage, "ENTRYPOINT") == ['["ocrserve"]']
        assert any("/wheels" in copy and "--from=build" in copy for copy in _instructions(stage, "COPY"))
    assert _instructions(stages["worker"], "CMD") == ['["worker"]']
    assert "serve" in _instructions(stages["api"], "CMD")[0]
    healthcheck = _instructions(stages["api"], "HEALTHCHECK")
    assert healthcheck and "/health" in healthcheck[0]


def test_the_image_builds_every_package_of_the_project(stages: dict[str, str]) -> None:
    """The wheel is built from what the build stage copies: every package pyproject.toml ships must be there."""
    find = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in find["include"]}
    assert all((ROOT / package / "__init__.py").is_file() for package in packages)
    copied = {copy.split()[0] for copy in _instructions(stages["build"], "COPY")}
    assert packages <= copied, f"the build stage does not copy {sorted(packages - copied)}"


def test_dockerfile_torch_wheels(stages: dict[str, str]) -> None:
    """The API and CPU images get the CPU torch wheel; the GPU worker the default (CUDA) one."""
    cpu_chain = stages["deps-cpu"]
    assert "download.pytorch.org/whl/cpu" in cpu_chain
    assert "download.pytorch.org/whl/cpu" not in stages["deps-cuda"]
    assert stages["api"].startswith("FROM deps-cpu") and stages["cpu"].startswith("FROM deps-cpu")
    assert stages["worker"].startswith("FROM deps-cuda")
    # dependencies are installed before the project's source is copied in (layer caching)
    for deps in ("deps-cpu", "deps-cuda"):
        assert "COPY app" not in stages[deps] and "requirements.txt" in stages[deps]


def test_dockerfile_base_images_are_pinned(stages: dict[str, str]) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
    names = set(stages)
    for stage in stages.values():
        image = stage.split()[1]
        image = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], image)
        if image.lower() in names:
            continue  # built on an earlier stage
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"unpinned base image {image}"


def _pins() -> dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions only: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_dependency_is_pinned_within_its_bounds() -> None:
    """constraints.txt holds a version of every dependency (torch aside: the machine picks its build) that
    pyproject.toml allows, and every dependency has an upper bound, so no fresh install resolves a new major."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    pins = _pins()
    for requirement in requirements:
        assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), requirement
        name = canonicalize_name(requirement.name)
        if name == "torch":
            assert name not in pins, "torch is pinned by OCRSERVE_TORCH_SPEC and TORCH_VERSION, not constraints.txt"
            continue
        assert name in pins, f"{name} is not pinned in constraints.txt (./dev lock)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"


def test_dev_and_images_install_the_pinned_versions(stages: dict[str, str]) -> None:
    dev = (ROOT / "dev").read_text(encoding="utf-8")
    assert "CONSTRAINTS=constraints.txt" in dev and '-c "$CONSTRAINTS" -e' in dev
    assert "constraints.txt" in _instructions(stages["build"], "COPY")[0]
    for deps in ("deps-cpu", "deps-cuda"):
        installs = [run for run in _instructions(stages[deps], "RUN") if "requirements.txt" in run]
        assert installs and all("-c /tmp/constraints.txt" in run for run in installs), deps
