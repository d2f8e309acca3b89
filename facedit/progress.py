"""Progress bars: :class:`RunProgress` moves per image (images done, images/s and time left);
:func:`counter` is a plain n/total bar.

The pipeline runs images in batches, so whole-image completions arrive in bursts; between
them the bar advances by each in-flight image's stage progress (decode, invert, generate, …,
as the job runner reports it), so a long CPU batch still shows movement and a stable rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """``3/150 · 0.42 img/s · 5:49 left`` from whole images finished since the start."""

    def render(self, task: Task) -> Text:
        done = int(task.fields.get("done", 0))
        total = int(task.total or 0)
        elapsed = task.elapsed or 0.0
        completed = float(task.completed)
        parts = [f"{done}/{total}"]
        if elapsed > 0 and completed > 0:
            rate = completed / elapsed
            parts.append(f"{rate:.2f} img/s")
            left = max(total - completed, 0.0) / rate
            parts.append(f"{_clock(left)} left")
        return Text(" · ".join(parts))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress:
    """Use as a context manager; feed it the runner's progress and each finished image."""

    def __init__(self, console: Console, total: int, label: str = "editing") -> None:
        self.total = total
        self._fractions: dict[str, float] = {}
        self._done = 0
        self._progress = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(bar_width=24), _RateColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[last]}", markup=False),
            console=console,
        )  # fmt: skip
        self._task = self._progress.add_task(label, total=max(total, 1), done=0, last="")
        self._last_refresh = 0.0

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)

    def on_progress(self, job_ids: Sequence[str], fraction: float) -> None:
        for job_id in job_ids:
            self._fractions[job_id] = max(self._fractions.get(job_id, 0.0), min(fraction, 0.99))
        self._update()

    def finished(self, job_id: str | None, name: str) -> None:
        if job_id is not None:
            self._fractions.pop(job_id, None)
        self._done += 1
        self._update(last=name)

    def _update(self, last: str | None = None) -> None:
        completed = self._done + sum(self._fractions.values())
        fields = {"done": self._done}
        if last is not None:
            fields["last"] = last if len(last) <= 32 else "…" + last[-31:]
        self._progress.update(self._task, completed=min(completed, self.total), **fields)
        now = time.monotonic()
        if now - self._last_refresh > 0.25:
            self._last_refresh = now
            self._progress.refresh()


def counter(console: Console, label: str, *columns: ProgressColumn) -> Progress:
    """A bar with ``n/total`` and the time elapsed, then ``columns`` (use as a context manager;
    ``label`` is a fixed word, shown in bold)."""
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), *columns, console=console)
