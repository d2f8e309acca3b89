"""Edit requests: ``attribute=strength`` with an optional W+ layer range, or a strength sweep.

Textual form (CLI, API): ``smile=+3``, ``age=-2``, ``pose=1.5@0-6`` (layers 0..5, end
exclusive), and sweeps ``smile=-3:3:7`` (start:end:steps, as InterFaceGAN's
``--start_distance/--end_distance/--steps``: 7 strengths evenly spaced from -3 to 3, ends
included). JSON form: ``{"attribute", "strength", "layers"?}`` or
``{"attribute", "sweep": {"start", "end", "steps"}, "layers"?}``.

A request is a list of edits applied together (w + Σ αᵢ·dᵢ). At most one of them may be a
sweep; a request with a sweep of N steps stands for N *variants* — the same request with the
sweep's attribute at each strength — and gives N results (:func:`expand_variants`).
Strengths must be finite and within ``±MAX_STRENGTH``; attribute names are checked against a
registry by the caller, which knows what the loaded weights offer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.core.errors import InvalidEditRequest

MAX_STRENGTH = 100.0
MIN_SWEEP_STEPS = 2
MAX_SWEEP_STEPS = 64
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_EDIT_RE = re.compile(
    rf"^\s*(?P<attr>{_NAME})\s*=\s*(?P<strength>[^@\s]+)\s*"
    r"(?:@\s*(?P<start>\d+)\s*-\s*(?P<end>\d+))?\s*$"
)


@dataclass(frozen=True)
class Sweep:
    """Strengths from ``start`` to ``end`` (both included) in ``steps`` even steps."""

    start: float
    end: float
    steps: int

    def strengths(self) -> list[float]:
        last = self.steps - 1
        # rounded so that e.g. 0.1 steps read 0.3, not 0.30000000000000004
        return [round(self.start + (self.end - self.start) * k / last, 6)
                for k in range(self.steps)]

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "steps": self.steps}


@dataclass(frozen=True)
class EditSpec:
    attribute: str
    strength: float  # for a sweep: its start (use the variants, never this, to edit)
    layers: tuple[int, int] | None = None  # [start, end) in W+; None = the direction's default
    sweep: Sweep | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"attribute": self.attribute}
        if self.sweep is not None:
            data["sweep"] = self.sweep.to_dict()
        else:
            data["strength"] = self.strength
        if self.layers is not None:
            data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditSpec:
        if not isinstance(data, dict) or "attribute" not in data:
            raise InvalidEditRequest(f"edit {data!r}: needs 'attribute' and 'strength'")
        layers = data.get("layers")
        layers = tuple(layers) if isinstance(layers, list | tuple) else layers
        if data.get("sweep") is not None:
            if "strength" in data:
                raise InvalidEditRequest(f"edit {data!r}: give either strength or sweep, not both")
            sweep = data["sweep"]
            if not isinstance(sweep, dict) or set(sweep) != {"start", "end", "steps"}:
                raise InvalidEditRequest(
                    f"edit {data!r}: 'sweep' needs exactly 'start', 'end' and 'steps'"
                )
            return make_sweep(data["attribute"], sweep["start"], sweep["end"], sweep["steps"],
                              layers)
        if data.get("strength") is None:
            raise InvalidEditRequest(f"edit {data!r}: give either strength or sweep")
        return make_edit(data["attribute"], data["strength"], layers)

    def at(self, strength: float) -> EditSpec:
        """This edit with a fixed strength (a sweep's step)."""
        return replace(self, strength=strength, sweep=None)

    @property
    def label(self) -> str:
        """Short, file-name-safe text: ``smile+2``, ``pose+1.5@0-6``, ``smile-3:3:7``."""
        return self._text("")

    def __str__(self) -> str:
        return self._text("=")

    def _text(self, equals: str) -> str:
        if self.sweep is not None:
            sweep = self.sweep
            value = f"{_number(sweep.start)}:{_number(sweep.end)}:{sweep.steps}"
        else:
            value = f"{self.strength:+g}"
        return f"{self.attribute}{equals}{value}" + (
            f"@{self.layers[0]}-{self.layers[1]}" if self.layers else ""
        )


def _number(value: float) -> str:
    return f"{value:g}"


def _strength(attribute: str, strength: Any, what: str = "strength") -> float:
    if isinstance(strength, bool):
        raise InvalidEditRequest(f"{what} for {attribute!r}: expected a number, got a boolean")
    try:
        value = float(strength)
    except (TypeError, ValueError) as exc:
        raise InvalidEditRequest(f"{what} for {attribute!r}: {strength!r} is not a number") from exc
    if not math.isfinite(value):
        raise InvalidEditRequest(f"{what} for {attribute!r}: {strength!r} is not finite")
    if abs(value) > MAX_STRENGTH:
        raise InvalidEditRequest(
            f"{what} for {attribute!r}: {value:g} is outside [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"
        )
    return value


def _attribute(attribute: Any) -> str:
    if not isinstance(attribute, str) or not re.fullmatch(_NAME, attribute):
        raise InvalidEditRequest(f"attribute {attribute!r}: expected a name like 'smile'")
    return attribute.lower()


def _layers(attribute: str, layers: Any) -> tuple[int, int] | None:
    if layers is None:
        return None
    if (
        not isinstance(layers, tuple | list)
        or len(layers) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in layers)
    ):
        raise InvalidEditRequest(f"layers for {attribute!r}: expected [start, end) integers")
    if layers[0] >= layers[1]:
        raise InvalidEditRequest(f"layers for {attribute!r}: start must be below end")
    return int(layers[0]), int(layers[1])


def make_edit(attribute: Any, strength: Any, layers: tuple[int, ...] | None = None) -> EditSpec:
    name = _attribute(attribute)
    return EditSpec(name, _strength(attribute, strength), _layers(attribute, layers))


def make_sweep(
    attribute: Any, start: Any, end: Any, steps: Any, layers: tuple[int, ...] | None = None
) -> EditSpec:
    """A sweep edit; refused when steps is outside [2, 64] or start equals end."""
    name = _attribute(attribute)
    low = _strength(attribute, start, "sweep start")
    high = _strength(attribute, end, "sweep end")
    if isinstance(steps, bool) or not isinstance(steps, int) and not (
        isinstance(steps, float) and steps.is_integer()
    ):
        raise InvalidEditRequest(f"sweep steps for {attribute!r}: {steps!r} is not an integer")
    steps = int(steps)
    if not MIN_SWEEP_STEPS <= steps <= MAX_SWEEP_STEPS:
        raise InvalidEditRequest(
            f"sweep steps for {attribute!r}: {steps} is outside "
            f"[{MIN_SWEEP_STEPS}, {MAX_SWEEP_STEPS}]"
        )
    if low == high:
        raise InvalidEditRequest(
            f"sweep for {attribute!r}: start and end are both {low:g}; a sweep needs two "
            "different strengths (use ATTRIBUTE=STRENGTH for one)"
        )
    return EditSpec(name, low, _layers(attribute, layers), Sweep(low, high, steps))


def parse_edit(text: str) -> EditSpec:
    """Parse ``attr=strength[@start-end]`` or ``attr=start:end:steps[@start-end]``."""
    match = _EDIT_RE.match(text or "")
    if not match:
        raise InvalidEditRequest(
            f"edit {text!r}: expected ATTRIBUTE=STRENGTH or ATTRIBUTE=START:END:STEPS, e.g. "
            "smile=+3, pose=1.5@0-6 or smile=-3:3:7"
        )
    layers = None
    if match["start"] is not None:
        layers = (int(match["start"]), int(match["end"]))
    strength = match["strength"]
    if ":" in strength:
        parts = strength.split(":")
        if len(parts) != 3:
            raise InvalidEditRequest(
                f"edit {text!r}: a sweep is ATTRIBUTE=START:END:STEPS, e.g. smile=-3:3:7"
            )
        start, end, steps = parts
        try:
            count = int(steps)
        except ValueError as exc:
            raise InvalidEditRequest(
                f"edit {text!r}: sweep steps {steps!r} is not an integer"
            ) from exc
        return make_sweep(match["attr"], start, end, count, layers)
    return make_edit(match["attr"], strength, layers)


def check_request(edits: Sequence[EditSpec]) -> None:
    """A request needs at least one edit and has at most one sweep."""
    if not edits:
        raise InvalidEditRequest("at least one edit is required")
    sweeps = [str(e) for e in edits if e.sweep is not None]
    if len(sweeps) > 1:
        raise InvalidEditRequest(
            f"at most one sweep per request; got {len(sweeps)}: {', '.join(sweeps)}"
        )


def expand_variants(edits: Sequence[EditSpec]) -> list[tuple[EditSpec, ...]]:
    """The fixed edit lists a request stands for: one, or one per step of its sweep."""
    check_request(edits)
    sweep = next((e for e in edits if e.sweep is not None), None)
    if sweep is None:
        return [tuple(edits)]
    return [tuple(e.at(s) if e is sweep else e for e in edits) for s in sweep.sweep.strengths()]


def variant_label(edits: Sequence[EditSpec]) -> str:
    """A file-name-safe name for one variant: ``smile+2``, ``smile-3,age-1``."""
    return ",".join(e.label for e in edits)
