"""``import shared.jobs`` stays light: SQLAlchemy only, none of torch, OpenCV, Celery, FastAPI
or boto3 (the API process and the CLI's service commands import it). That api/ and workers/
write no SQL is checked with the other layering rules in tests/test_import_rules.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_import_shared_jobs_stays_light() -> None:
    code = (
        "import sys, shared.jobs; "
        "heavy = [m for m in ('torch', 'cv2', 'celery', 'fastapi', 'boto3') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
