"""``OUT/jobs.jsonl``: one JSON object per job (:class:`shared.core.contracts.LogRow`), written
by ``facedit run``/``edit --out`` and ``facedit submit --wait``, read back to resume a run.
Runs append; the last row for a ``request`` is the one that counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.core.contracts import LogRow

LOG_NAME = "jobs.jsonl"


def append_rows(out_dir: Path, rows: Iterable[LogRow], *, truncate: bool = False) -> Path:
    path = Path(out_dir) / LOG_NAME
    with open(path, "w" if truncate else "a", encoding="utf-8") as log:
        for row in rows:
            log.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
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
            rows.append(LogRow.from_dict(data))
    return rows


def request_key(sha256: str, edits: list[dict], options: Mapping[str, Any], models: str) -> str:
    """What makes two runs of one input "the same": its bytes, edits, options and models."""
    document = {"sha256": sha256, "edits": edits, "options": options, "models": models}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
