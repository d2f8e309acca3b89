"""Argument checks of the job store's methods: each raises ValueError naming the argument.

Edit lists are checked by :func:`shared.jobs.records.check_edits` (with
:mod:`shared.core.edits`, the one parser of edits).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shared.core.contracts import JobStatus


def check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}, got {value!r}")


def check_text(name: str, value: str | None) -> None:
    """``value`` is None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")


def check_error(error_code: str, error_message: str) -> None:
    if not isinstance(error_code, str) or not error_code or len(error_code) > 64:
        raise ValueError(f"error_code must be a string of 1-64 characters, got {error_code!r}")
    if not isinstance(error_message, str):
        raise ValueError(f"error_message must be a string, got {error_message!r}")


def job_status(status: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in JobStatus)
        raise ValueError(f"status must be one of {choices}, got {status!r}") from None


def lease(lease_seconds: float) -> timedelta:
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int | float)
        or not 0 < lease_seconds < math.inf
    ):
        raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
    return timedelta(seconds=lease_seconds)


def json_object(value: Any, name: str) -> dict[str, Any]:
    """A deep, JSON-clean copy of a mapping, or ValueError naming ``name``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    return json_ready(dict(value), name)


def json_ready(value: Any, name: str) -> Any:
    """A deep, JSON-clean copy of ``value`` (no NaN, no sets, …), or ValueError."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from exc
