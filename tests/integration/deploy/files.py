"""Readers for the deployment files: YAML manifests, Dockerfiles, .dockerignore, .env."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.integration.deploy.validators import require_module

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration as `docker compose config` prints it (``16m0s``)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"duration {text!r} is not a Go duration like '16m0s'")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True)
class Manifest:
    """One YAML document of a multi-document manifest file."""

    path: Path
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def label(self) -> str:
        return f"{self.path.name}#{self.index}:{self.kind}/{self.body['metadata'].get('name')}"


def load_manifests(directory: Path) -> list[Manifest]:
    yaml = require_module("yaml", "PyYAML")
    manifests = []
    for path in sorted(directory.glob("*.yaml")):
        documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        manifests += [Manifest(path, i, doc) for i, doc in enumerate(documents) if doc]
    return manifests


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case: FROM, RUN, USER, ...
    value: tuple[str, ...]
    flags: tuple[str, ...]
    original: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile, as BuildKit's own parser (``dockerfile``) reads them."""
    dockerfile = require_module("dockerfile", "dockerfile")
    return [
        Instruction(c.cmd.upper(), tuple(c.value), tuple(c.flags), c.original)
        for c in dockerfile.parse_file(str(path))
    ]


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.cmd == "FROM"]
    return instructions[starts[-1] :]


def resolved_base_images(instructions: list[Instruction]) -> list[str]:
    """The image of each FROM, with ARGs declared before the first FROM substituted."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "FROM":
            break
        if ins.cmd == "ARG":
            name, _, value = ins.value[0].partition("=")
            defaults[name] = value.strip("\"'")
    images = []
    for ins in instructions:
        if ins.cmd == "FROM":
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), ins.value[0]
            )
            images.append(image)
    return images


def pip_install_arguments(run_command: str) -> list[list[str]]:
    """The arguments of each ``pip install`` / ``uv pip install`` in a RUN shell command."""
    import shlex

    lexer = shlex.shlex(run_command, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands, current = [], []
    for token in tokens:
        if token in {"&&", "||", ";", "|", "&"}:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    found = []
    for words in commands:
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                found.append(words[i + 2 :])
                break
    return found


def requirement_names(arguments: list[str]) -> list[Requirement]:
    """Requirements among pip arguments (skipping options and their values, and paths)."""
    requirements, skip_next = [], False
    for argument in arguments:
        if skip_next:
            skip_next = False
            continue
        if argument.startswith("-"):
            skip_next = argument in {
                "--index-url",
                "-i",
                "--extra-index-url",
                "-r",
                "-c",
                "--python",
                "-t",
                "--target",
            }
            continue
        if argument.startswith((".", "/")):
            continue
        requirements.append(Requirement(argument))
    return requirements


def project_dependencies(pyproject: Path) -> dict[str, list[Requirement]]:
    """``{"": base dependencies, extra: its dependencies}`` from pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    groups = {"": [Requirement(r) for r in project["dependencies"]]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        groups[extra] = [Requirement(r) for r in requirements]
    return groups


def canonical(requirement: Requirement) -> str:
    return canonicalize_name(requirement.name)


class DockerIgnore:
    """Docker's .dockerignore rules: ``*``, ``?``, ``[...]``, ``**``, ``!`` exceptions, a
    pattern matching a directory covers everything under it, the last matching line wins."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:].strip() if negated else line
            pattern = pattern.strip("/")
            self.rules.append((negated, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = ["^"], 0
        while i < len(pattern):
            char = pattern[i]
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            if char == "*":
                out.append("[^/]*")
            elif char == "?":
                out.append("[^/]")
            elif char == "[":
                end = pattern.index("]", i + 1)
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
            else:
                out.append(re.escape(char))
            i += 1
        return "".join(out) + "$"

    def excludes(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negated, regex in self.rules:
            if any(regex.match(prefix) for prefix in prefixes):
                excluded = not negated
        return excluded


@dataclass(frozen=True)
class EnvEntry:
    key: str
    value: str
    comment: str  # the comment lines directly above the entry, joined


def parse_env_example(path: Path) -> list[EnvEntry]:
    """``KEY=value`` lines of an env file, each with the comment lines right above it (a
    line that follows another entry directly has no comment)."""
    entries, comment = [], []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        else:
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{path.name}: line {raw!r} is not KEY=value")
            entries.append(EnvEntry(key.strip(), value, " ".join(comment)))
            comment = []
    return entries
