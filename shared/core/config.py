"""Settings from the environment (``FACEDIT_*``), in one place.

Defaults give the embedded runtime: SQLite file and local-directory storage under
``FACEDIT_DATA_DIR``, no broker, models on the best available device.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.core.contracts import JOB_TIME_LIMIT_S, VISIBILITY_TIMEOUT_S


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "facedit"


# Threads that encode and store results behind the model stage (codecs and storage clients
# release the GIL for most of their work): FACEDIT_STORE_THREADS's default.
DEFAULT_STORE_THREADS = 2


class Settings(BaseSettings):
    """Every ``FACEDIT_*`` variable the system reads. README.md documents each."""

    model_config = SettingsConfigDict(env_prefix="FACEDIT_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""
    broker_url: str = "redis://127.0.0.1:6379/0"
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    weights_dir: Path | None = None
    models: str = "auto"
    inversion: Literal["e4e", "psp"] = "e4e"
    device: str = "auto"
    batch_size: int = Field(default=8, ge=1, le=256)
    max_image_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=64_000_000, ge=64 * 64)
    min_image_side: int = Field(default=64, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    lease_seconds: int = Field(default=600, ge=1)
    # Distributed runtime: queue, API limits, presigned URLs, webhooks, the worker's sweep.
    queue: str = Field(default="facedit", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    s3_public_endpoint_url: str | None = None  # the S3 endpoint clients reach (presigned URLs)
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_max_batch_images: int = Field(default=1000, ge=1)
    url_expires_seconds: int = Field(default=3600, ge=60, le=604800)
    webhook_secret: str = ""
    webhook_allow_hosts: str = ""  # comma-separated hosts allowed over plain http
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_retry_seconds: float = Field(default=5.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    # Webhook deliveries have a queue of their own (default "<queue>-webhooks"), consumed by
    # `facedit worker --webhooks` (no models, no GPU); KEDA counts only the job queue.
    webhook_queue: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    # What `facedit worker` runs: "jobs" (GPU, the job queue) or "webhooks" (`--webhooks`).
    worker_role: Literal["jobs", "webhooks"] = "jobs"
    # Port of a worker's Prometheus endpoint (/metrics, served by its main process); 0: none.
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    # Per-API-key rate limits (api/ratelimit.py), moving windows counted in Redis so that every
    # API replica shares them; 0 turns a limit off. Requests: REQUESTS_PER_SECOND ×
    # BURST_SECONDS in any BURST_SECONDS seconds. Images: what submissions queue (a sweep
    # counts its steps) in any minute. Counted in RATE_LIMIT_STORAGE_URL (default: the broker).
    rate_limit_requests_per_second: int = Field(default=20, ge=0)
    rate_limit_burst_seconds: int = Field(default=2, ge=1, le=3600)
    rate_limit_images_per_minute: int = Field(default=1000, ge=0)
    rate_limit_storage_url: str = ""
    # Throughput (shared/jobs/runner.py process_batches): threads that encode and store
    # results behind the model stage; how long one worker task keeps claiming batches while
    # jobs are queued (the next batch is claimed and fetched while the current one runs; at
    # most a quarter of the task time limit, see drain_seconds);
    # the null pipeline's stand-in accelerator time per image (benchmarks; 0: none).
    store_threads: int = Field(default=DEFAULT_STORE_THREADS, ge=1, le=64)
    # The networks' precision: fp32, or bf16 autocast (the Poisson stage stays float32).
    precision: Literal["fp32", "bf16"] = "fp32"
    worker_drain_seconds: float = Field(default=30.0, ge=0)
    null_hold_ms: float = Field(default=0.0, ge=0)
    # Reliability: a task's hard time limit; how transient failures are retried per job.
    task_time_limit_seconds: int = Field(default=JOB_TIME_LIMIT_S, ge=5)
    transient_retry_seconds: float = Field(default=2.0, gt=0)  # first backoff, then doubling
    transient_retry_budget_seconds: float = Field(default=900.0, gt=0)
    # Retention (`facedit gc`, and the workers' sweep every GC_INTERVAL_SECONDS; 0: never):
    # days an upload, a finished job's stored results and a finished batch's rows are kept
    # (0 keeps them forever). A queued or running job and what it reads are never removed.
    retain_uploads_days: float = Field(default=7.0, ge=0)
    retain_outputs_days: float = Field(default=30.0, ge=0)
    retain_jobs_days: float = Field(default=90.0, ge=0)
    gc_interval_seconds: float = Field(default=3600.0, ge=0)
    # Client side (`facedit submit` / `facedit status`).
    api_url: str = "http://127.0.0.1:8000"
    api_key: str = ""

    @property
    def visibility_timeout_seconds(self) -> int:
        """How long the broker waits for a task's acknowledgement before redelivering it:
        well beyond the task time limit, or a long task would run twice."""
        return max(VISIBILITY_TIMEOUT_S, 2 * self.task_time_limit_seconds)

    @property
    def drain_seconds(self) -> float:
        """How long a worker task keeps claiming: FACEDIT_WORKER_DRAIN_SECONDS, at most a
        quarter of the task time limit (the task must still finish what it holds)."""
        return min(self.worker_drain_seconds, self.task_time_limit_seconds / 4)

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'facedit.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{self.data_dir / 'storage'}"
        if self.weights_dir is None:
            self.weights_dir = self.data_dir / "weights"
        if not self.webhook_queue:
            self.webhook_queue = f"{self.queue}-webhooks"
        if self.webhook_queue == self.queue:
            raise ValueError("FACEDIT_WEBHOOK_QUEUE must differ from FACEDIT_QUEUE: webhook "
                             "deliveries must not wait behind GPU jobs nor scale GPU workers")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
