"""Gallery rows from what a run left in its output folder (``jobs.jsonl`` rows)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facedit.gallery import GalleryImage, GalleryRow, GalleryVariant
from facedit.jobs_log import LogRow


def row_from_log(row: LogRow, out_dir: Path, original: Path | None, status: str,
                 note: str | None = None) -> GalleryRow:
    """One input: its original, each result with its intermediates, or its error."""
    out_dir = Path(out_dir).absolute()
    original = Path(original).absolute() if original is not None else None
    variants = tuple(
        GalleryVariant(
            label=result.get("label") or "result",
            result=GalleryImage("result", out_dir / result["file"]),
            extras=tuple(GalleryImage(name, out_dir / file)
                         for name, file in (result.get("intermediates") or {}).items()),
        )
        for result in row.results
    )
    details = [("suppressor", row.suppressor)] if row.suppressor else []
    if row.seconds is not None and status != "skipped":
        details.append(("seconds", f"{row.seconds:.2f}"))
    if row.job_id:
        details.append(("job", row.job_id))
    return GalleryRow(
        name=row.input, status=status,
        original=original if original is not None and original.is_file() else None,
        variants=variants, error_code=row.error_code, error_message=row.error,
        details=tuple(details), note=note,
    )  # fmt: skip


def rows_from_records(records: Sequence[Any], out_dir: Path) -> list[GalleryRow]:
    """``facedit run``'s records (:class:`facedit.embedded.RunRecord`) in input order."""
    return [row_from_log(r.row, out_dir, r.path, r.status) for r in records]
