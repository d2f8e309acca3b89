"""Edit requests: ``attribute=strength`` with an optional W+ layer range.

Textual form (CLI, API): ``smile=+3``, ``age=-2``, ``pose=1.5@0-6`` (layers 0..5, end
exclusive). Strengths must be finite and within ``±MAX_STRENGTH``; attribute names are
checked against a registry by the caller, which knows what the loaded weights offer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidEditRequest

MAX_STRENGTH = 100.0
_EDIT_RE = re.compile(
    r"^\s*(?P<attr>[A-Za-z][A-Za-z0-9_]*)\s*=\s*(?P<strength>[^@\s]+)\s*"
    r"(?:@\s*(?P<start>\d+)\s*-\s*(?P<end>\d+))?\s*$"
)


@dataclass(frozen=True)
class EditSpec:
    attribute: str
    strength: float
    layers: tuple[int, int] | None = None  # [start, end) in W+; None = the direction's default

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"attribute": self.attribute, "strength": self.strength}
        if self.layers is not None:
            data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditSpec:
        try:
            attribute = data["attribute"]
            strength = data["strength"]
        except (KeyError, TypeError) as exc:
            raise InvalidEditRequest(f"edit {data!r}: needs 'attribute' and 'strength'") from exc
        layers = data.get("layers")
        return make_edit(attribute, strength, tuple(layers) if layers is not None else None)

    def __str__(self) -> str:
        text = f"{self.attribute}={self.strength:+g}"
        return text + (f"@{self.layers[0]}-{self.layers[1]}" if self.layers else "")


def make_edit(attribute: Any, strength: Any, layers: tuple[int, ...] | None = None) -> EditSpec:
    if not isinstance(attribute, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", attribute):
        raise InvalidEditRequest(f"attribute {attribute!r}: expected a name like 'smile'")
    if isinstance(strength, bool):
        raise InvalidEditRequest(f"strength for {attribute!r}: expected a number, got a boolean")
    try:
        value = float(strength)
    except (TypeError, ValueError) as exc:
        raise InvalidEditRequest(
            f"strength for {attribute!r}: {strength!r} is not a number"
        ) from exc
    if not math.isfinite(value):
        raise InvalidEditRequest(f"strength for {attribute!r}: {strength!r} is not finite")
    if abs(value) > MAX_STRENGTH:
        raise InvalidEditRequest(
            f"strength for {attribute!r}: {value:g} is outside "
            f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"
        )
    span: tuple[int, int] | None = None
    if layers is not None:
        if len(layers) != 2 or not all(isinstance(v, int) and v >= 0 for v in layers):
            raise InvalidEditRequest(f"layers for {attribute!r}: expected [start, end) integers")
        if layers[0] >= layers[1]:
            raise InvalidEditRequest(f"layers for {attribute!r}: start must be below end")
        span = (int(layers[0]), int(layers[1]))
    return EditSpec(attribute.lower(), value, span)


def parse_edit(text: str) -> EditSpec:
    """Parse ``attr=strength[@start-end]``."""
    match = _EDIT_RE.match(text or "")
    if not match:
        raise InvalidEditRequest(
            f"edit {text!r}: expected ATTRIBUTE=STRENGTH, e.g. smile=+3 or pose=1.5@0-6"
        )
    layers = None
    if match["start"] is not None:
        layers = (int(match["start"]), int(match["end"]))
    return make_edit(match["attr"], match["strength"], layers)
