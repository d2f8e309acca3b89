"""Result files named after their inputs: ``OUT/<input stem>.<edit>.<ext>``.

``portrait.jpg`` edited with ``smile=+2`` gives ``portrait.smile+2.png``; a sweep gives one
file per step (``portrait.smile-3.png`` … ``portrait.smile+3.png``); ``--save-latents`` adds
``portrait.latent.pt``. When a name is taken — another input with the same stem, or a file
already in OUT — the input gets the next free stem ``portrait-2``, ``portrait-3`` …, the same
for all its files, so they stay together. Files are created exclusively (a hard link to the
stored result, or a new file), so nothing that exists is ever overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


class OutputNamer:
    """Chooses free names in one output folder and remembers the ones it gave out."""

    def __init__(self, out_dir: Path, taken: Iterable[str] = ()) -> None:
        self.out_dir = Path(out_dir)
        self.taken = set(taken)

    def stem_for(self, stem: str, suffixes: Sequence[str]) -> str:
        """``stem`` or the first ``stem-N`` for which every ``stem + suffix`` is free."""
        stem = _safe(stem)
        candidate, n = stem, 1
        while any(self._busy(candidate + s) for s in suffixes):
            n += 1
            candidate = f"{stem}-{n}"
        self.taken.update(candidate + s for s in suffixes)
        return candidate

    def _busy(self, name: str) -> bool:
        return name in self.taken or os.path.lexists(self.out_dir / name)


def place_file(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s bytes: a hard link where possible, else a copy.

    Raises FileExistsError rather than replace an existing ``target``.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # another file system, or links not allowed
        write_new(target, Path(source).read_bytes())


def write_new(target: Path, data: bytes) -> None:
    """Write a file that must not exist yet (FileExistsError otherwise)."""
    with open(target, "xb") as handle:
        handle.write(data)


def _safe(stem: str) -> str:
    """A stem that is one file name: no separators, not empty or hidden."""
    cleaned = stem.replace("/", "_").replace("\\", "_").replace("\0", "_").strip()
    cleaned = cleaned.lstrip(".")
    return cleaned or "image"
