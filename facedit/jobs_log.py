"""``OUT/jobs.jsonl``: one JSON object per job, written by ``facedit run``/``edit --out`` and
``facedit submit --wait``, read back to resume a run.

Keys (one writer, so both commands write the same ones): ``input``, ``job_id``, ``status``,
``error_code``, ``error``, ``output`` (where the first result is stored), ``seconds``, and
``sha256`` (of the input's bytes), ``request`` (the resume key: input bytes, edits, options and
models), ``suppressor`` (the one that ran), ``results`` (``[{"label", "file",
"intermediates"}]``, file names relative to OUT) and ``latent`` (the stored W+ code's file).
Runs append; the last row for a ``request`` is the one that counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "jobs.jsonl"


@dataclass
class LogRow:
    input: str
    job_id: str | None
    status: str
    error_code: str | None = None
    error: str | None = None
    output: str | None = None
    seconds: float | None = None
    sha256: str | None = None
    request: str | None = None
    suppressor: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    latent: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        if data["seconds"] is not None:
            data["seconds"] = round(data["seconds"], 4)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogRow:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known.setdefault("input", "")
        known.setdefault("job_id", None)
        known.setdefault("status", "unknown")
        return cls(**known)


def append_rows(out_dir: Path, rows: Iterable[LogRow], *, truncate: bool = False) -> Path:
    path = Path(out_dir) / LOG_NAME
    with open(path, "w" if truncate else "a", encoding="utf-8") as log:
        for row in rows:
            log.write(row.to_json() + "\n")
    return path


def read_rows(out_dir: Path) -> list[LogRow]:
    """Every row of an existing log; lines that are not JSON objects are skipped."""
    path = Path(out_dir) / LOG_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            rows.append(LogRow.from_json(data))
    return rows


def request_key(sha256: str, edits: list[dict], options: Mapping[str, Any], models: str) -> str:
    """What makes two runs of one input "the same": its bytes, edits, options and models."""
    document = {"sha256": sha256, "edits": edits, "options": options, "models": models}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
