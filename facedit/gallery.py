"""A static before/after gallery: ``out_dir/index.html`` plus ``out_dir/thumbs/``.

The page opens straight from ``file://`` — no server, no external CSS, JavaScript or fonts,
and no JavaScript at all: the status filter is CSS (radio buttons and ``:has()``). Every
link is relative to ``out_dir`` (sources outside it are reached through ``../``), each path
segment percent-encoded so names with spaces, ``#``, ``%``, ``?`` or non-ASCII characters
resolve.

Layout of the page::

    title, counts (total / succeeded / failed / cancelled / skipped), the notes lines,
    and a filter bar (all / failed / cancelled / skipped / succeeded)
    one card per input (GalleryRow), in the order given:
        header   number, the input's name, a status badge, the row's note and details
        error    failed or cancelled rows: the error code and message, prominently
        body     Original | Result — or, for a strength sweep, a horizontal strip of
                 results, each labelled with its edit | Intermediates (mask, naive,
                 poisson …), grouped by edit, when the variants have extras

Each picture is a small JPEG thumbnail wrapped in a link to the full-size file. Images
are ``loading="lazy" decoding="async"`` with ``width``/``height`` set to the thumbnail's
real size, so a gallery of thousands of rows opens quickly and does not jump while
loading. A source that cannot be decoded (missing, empty, not an image, truncated, too
large) gets a "no preview: <reason>" box instead of an ``<img>`` — never a broken image.

The thumbs folder holds ``<key>.jpg`` files (longest side ``thumb_size``, quality 80)
where ``key`` hashes the source's real path, byte size, mtime and the thumbnail size,
so a rerun reuses every thumbnail whose source did not change; they are made in a
thread pool, JPEG sources decoded at reduced scale with Pillow's ``draft()``. Stale
thumbnails are never deleted. ``GalleryImage.path`` may be absolute or relative to
``out_dir``.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["GalleryImage", "GalleryRow", "GalleryVariant", "write_gallery"]

STATUSES = ("succeeded", "failed", "cancelled", "skipped")
THUMBS_DIR = "thumbs"
THUMB_QUALITY = 80
_THUMB_VERSION = "1"  # bump when the thumbnail code changes, to invalidate cached thumbs
_DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_RESIZABLE_MODES = ("RGB", "RGBA", "L", "LA", "I", "F", "CMYK", "RGBX")


@dataclass(frozen=True)
class GalleryImage:
    label: str  # "result", "mask", "naive", "poisson", or an edit label like "smile+2"
    path: Path  # a local image file, full size (absolute, or relative to the gallery's folder)
    caption: str = ""  # shown under the thumbnail, e.g. "seam 2.31"


@dataclass(frozen=True)
class GalleryVariant:
    label: str  # the edit, e.g. "smile+2" or "smile-3,age-1"
    result: GalleryImage
    extras: tuple[GalleryImage, ...] = ()  # mask, naive, poisson … when intermediates were kept


@dataclass(frozen=True)
class GalleryRow:
    name: str  # the input as the user named it
    status: str  # "succeeded" | "failed" | "cancelled" | "skipped" (done in an earlier run)
    original: Path | None = None  # the input file (None when missing)
    variants: tuple[GalleryVariant, ...] = ()  # one, or several for a sweep (shown as a strip)
    error_code: str | None = None
    error_message: str | None = None
    # e.g. (("suppressor", "poisson"), ("seconds", "1.42"))
    details: tuple[tuple[str, str], ...] = ()
    note: str | None = None  # e.g. "toy GAN: untrained models, not a meaningful edit"


@dataclass(frozen=True)
class Thumb:
    """The outcome of thumbnailing one source: a file in thumbs/, or why there is none."""

    name: str | None = None  # file name inside thumbs/
    width: int = 0
    height: int = 0
    reason: str | None = None  # set when there is no thumbnail


# --------------------------------------------------------------------------- thumbnails


def _source_path(out_dir: Path, path: Path) -> Path:
    """``path`` as an absolute path (relative paths are relative to the gallery's folder)."""
    path = Path(path)
    return Path(os.path.abspath(path if path.is_absolute() else out_dir / path))


def _thumb_key(source: Path, thumb_size: int) -> tuple[str | None, str | None]:
    """(cache key, None) for a readable file, else (None, reason there is no preview)."""
    try:
        stat = source.stat()
    except FileNotFoundError:
        return None, "file not found"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or type(exc).__name__})"
    if not source.is_file():
        return None, "not a file"
    if stat.st_size == 0:
        return None, "empty file (0 bytes)"
    ident = f"{_THUMB_VERSION}|{os.path.realpath(source)}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(f"{ident}|{thumb_size}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24], None


def _max_pixels() -> int:
    return Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS


def _prepare_for_resize(image: Image.Image) -> Image.Image:
    """Convert modes Pillow cannot resize well (palette, 1-bit, 16-bit …) to ones it can."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return image.convert("I")
    if image.mode in _RESIZABLE_MODES:
        return image
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if has_alpha else "RGB")


def _integer_to_8bit(image: Image.Image, sixteen_bit: bool) -> Image.Image:
    """Scale an 'I' or 'F' image to 8-bit greyscale (16-bit sources: divide by 257)."""
    values = np.asarray(image, dtype=np.float32)
    top = float(values.max()) if values.size else 0.0
    if sixteen_bit or 255.0 < top <= 65535.0:
        values = values / 257.0
    elif top > 65535.0:
        values = values * (255.0 / top)
    elif image.mode == "F" and 0.0 < top <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), "L")


def _to_rgb(image: Image.Image, sixteen_bit: bool) -> Image.Image:
    """Any resized image → RGB; transparency is composited onto white."""
    if image.mode in ("I", "F"):
        image = _integer_to_8bit(image, sixteen_bit)
    if "A" in image.getbands():
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _decode_thumbnail(source: Path, thumb_size: int) -> Image.Image:
    """Decode ``source`` and shrink it to an RGB image whose longest side is ≤ ``thumb_size``."""
    with Image.open(source) as image:
        width, height = image.size
        if width * height > _max_pixels():
            raise Image.DecompressionBombError(f"{width}×{height} pixels")
        if image.format == "JPEG":
            image.draft("RGB", (thumb_size, thumb_size))
        image.load()
        sixteen_bit = image.mode in _SIXTEEN_BIT_MODES
        upright = ImageOps.exif_transpose(image)
        small = _prepare_for_resize(upright)
        small.thumbnail((thumb_size, thumb_size), Image.Resampling.BICUBIC)
        return _to_rgb(small, sixteen_bit)


def _save_jpeg(image: Image.Image, target: Path) -> None:
    """Write ``image`` to ``target`` atomically, so an interrupted run leaves no half file."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        image.save(partial, "JPEG", quality=THUMB_QUALITY)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _cached_size(target: Path) -> tuple[int, int] | None:
    """The size of an already written thumbnail, or None when there is no usable one."""
    if not target.is_file():
        return None
    try:
        with Image.open(target) as image:
            return image.size
    except (OSError, ValueError):
        return None


def _failure_reason(exc: BaseException) -> str:
    """A short, human-readable reason for a source that could not be thumbnailed."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "image too large to preview"
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "cannot read (permission denied)"
    if isinstance(exc, IsADirectoryError):
        return "not a file"
    if isinstance(exc, (OSError, SyntaxError, EOFError)):
        return "truncated or corrupt image data"
    if isinstance(exc, ValueError):
        return f"unsupported image ({exc})"
    if isinstance(exc, MemoryError):
        return "image too large to preview"
    return f"cannot decode ({type(exc).__name__})"


def _make_thumb(source: Path, key: str, thumbs_dir: Path, thumb_size: int) -> Thumb:
    """Reuse or create the thumbnail ``thumbs_dir/<key>.jpg`` for ``source``."""
    target = thumbs_dir / f"{key}.jpg"
    size = _cached_size(target)
    if size is None:
        try:
            image = _decode_thumbnail(source, thumb_size)
        except Exception as exc:  # any decoding problem becomes a placeholder, never a crash
            return Thumb(reason=_failure_reason(exc))
        _save_jpeg(image, target)
        size = image.size
    return Thumb(name=target.name, width=size[0], height=size[1])


def _all_sources(out_dir: Path, rows: Iterable[GalleryRow]) -> list[Path]:
    """Every image path the page shows, made absolute (duplicates kept)."""
    paths: list[Path] = []
    for row in rows:
        if row.original is not None:
            paths.append(_source_path(out_dir, row.original))
        for variant in row.variants:
            for image in (variant.result, *variant.extras):
                paths.append(_source_path(out_dir, image.path))
    return paths


def make_thumbnails(
    out_dir: Path, sources: Iterable[Path], thumb_size: int, workers: int
) -> dict[Path, Thumb]:
    """Thumbnail every distinct source (absolute paths) in a thread pool; reuse cached ones."""
    thumbs_dir = out_dir / THUMBS_DIR
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    results: dict[Path, Thumb] = {}
    pending: dict[str, list[Path]] = {}
    for source in dict.fromkeys(sources):
        key, reason = _thumb_key(source, thumb_size)
        if key is None:
            results[source] = Thumb(reason=reason)
        else:
            pending.setdefault(key, []).append(source)
    # Pillow only *warns* about images between one and two times MAX_IMAGE_PIXELS; make that
    # an error for the pool's duration (set once here: catch_warnings is not thread-safe).
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {
                key: pool.submit(_make_thumb, paths[0], key, thumbs_dir, thumb_size)
                for key, paths in pending.items()
            }
            for key, future in futures.items():
                for source in pending[key]:
                    results[source] = future.result()
    return results


# --------------------------------------------------------------------------- HTML pieces


def _esc(text: object) -> str:
    """HTML-escape ``text``; undecodable bytes of file names (surrogates) show as U+FFFD."""
    readable = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return html.escape(readable, quote=True)


def _href(out_dir: Path, target: Path) -> str:
    """A URL for ``target`` relative to ``out_dir``, each path segment percent-encoded."""
    try:
        relative = os.path.relpath(target, out_dir)
    except ValueError:  # another drive (Windows): fall back to an absolute file URL
        return Path(target).as_uri()
    segments = relative.replace(os.sep, "/").split("/")
    return "/".join(quote(segment, safe="", errors="surrogateescape") for segment in segments)


def _css_token(text: str) -> str:
    """A string safe to use as a CSS class / attribute value."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "unknown"


class _Page:
    """Renders rows to HTML, knowing where the page lives and which thumbnails exist."""

    def __init__(self, out_dir: Path, thumbs: dict[Path, Thumb]) -> None:
        self.out_dir = out_dir
        self.thumbs = thumbs

    def figure(self, path: Path | None, label: str, caption: str, alt: str, kind: str) -> str:
        """One thumbnail (or placeholder) with its label and caption."""
        picture = self.picture(path, alt)
        label_html = f'<span class="lbl">{_esc(label)}</span>' if label else ""
        caption_html = f'<span class="cap">{_esc(caption)}</span>' if caption else ""
        figcaption = f"<figcaption>{label_html}{caption_html}</figcaption>" if (
            label_html or caption_html
        ) else ""
        return f'<figure class="fig {kind}">{picture}{figcaption}</figure>'

    def has_thumb(self, path: Path | None) -> bool:
        """Whether ``path`` has a thumbnail (rather than a "no preview" box)."""
        if path is None:
            return False
        thumb = self.thumbs.get(_source_path(self.out_dir, path))
        return thumb is not None and thumb.name is not None

    def picture(self, path: Path | None, alt: str) -> str:
        """An ``<img>`` linked to the full-size file, or a "no preview" box."""
        if path is None:
            return self.placeholder("no input file", None)
        source = _source_path(self.out_dir, path)
        thumb = self.thumbs.get(source) or Thumb(reason="not thumbnailed")
        link = _href(self.out_dir, source)
        if thumb.name is None:
            exists = source.is_file()
            return self.placeholder(thumb.reason or "unknown", link if exists else None)
        src = f"{THUMBS_DIR}/{quote(thumb.name)}"
        return (
            f'<a class="pic" href="{_esc(link)}" title="{_esc(alt)} — open full size">'
            f'<img src="{_esc(src)}" alt="{_esc(alt)}" width="{thumb.width}" '
            f'height="{thumb.height}" loading="lazy" decoding="async"></a>'
        )

    @staticmethod
    def placeholder(reason: str, link: str | None) -> str:
        text = f'<span>no preview: {_esc(reason)}</span>'
        if link is not None:
            text += f'<a href="{_esc(link)}">open file</a>'
        return f'<div class="pic ph" role="img" aria-label="no preview">{text}</div>'

    def row(self, index: int, row: GalleryRow) -> str:
        status = _css_token(row.status)
        parts = [
            f'<section class="row st-{status}" id="r{index}" data-status="{status}">',
            self.row_header(index, row, status),
            self.row_error(row),
            '<div class="body">',
            self.original_group(row),
            self.results_group(row),
            self.extras_group(row),
            "</div></section>",
        ]
        return "".join(parts)

    @staticmethod
    def row_header(index: int, row: GalleryRow, status: str) -> str:
        note = f'<span class="note">{_esc(row.note)}</span>' if row.note else ""
        details = "".join(
            f"<span><b>{_esc(key)}</b> {_esc(value)}</span>" for key, value in row.details
        )
        details_html = f'<div class="details">{details}</div>' if details else ""
        return (
            f'<header><a class="num" href="#r{index}">{index}</a>'
            f'<h2 class="name">{_esc(row.name)}</h2>'
            f'<span class="badge b-{status}">{_esc(row.status)}</span>{note}{details_html}'
            "</header>"
        )

    @staticmethod
    def row_error(row: GalleryRow) -> str:
        if not (row.error_code or row.error_message):
            return ""
        code = f'<code class="code">{_esc(row.error_code)}</code>' if row.error_code else ""
        message = f'<span class="msg">{_esc(row.error_message)}</span>' if row.error_message else ""
        return f'<div class="error" role="alert">{code}{message}</div>'

    def original_group(self, row: GalleryRow) -> str:
        kind = "main" if row.variants or self.has_thumb(row.original) else "small"
        figure = self.figure(row.original, "", "", f"{row.name} — original", kind)
        return f'<div class="group"><h3>Original</h3>{figure}</div>'

    def results_group(self, row: GalleryRow) -> str:
        if not row.variants:
            return ""
        sweep = len(row.variants) > 1
        figures = "".join(
            self.figure(
                variant.result.path,
                variant.label,
                variant.result.caption,
                f"{row.name} — {variant.label}",
                "sweep" if len(row.variants) > 3 else "main",
            )
            for variant in row.variants
        )
        title = f"Results <small>{len(row.variants)} edits</small>" if sweep else "Result"
        return (
            f'<div class="group results"><h3>{title}</h3>'
            f'<div class="strip">{figures}</div></div>'
        )

    def extras_group(self, row: GalleryRow) -> str:
        with_extras = [variant for variant in row.variants if variant.extras]
        if not with_extras:
            return ""
        show_edit = len(row.variants) > 1
        lines = []
        for variant in with_extras:
            figures = "".join(
                self.figure(
                    extra.path,
                    extra.label,
                    extra.caption,
                    f"{row.name} — {variant.label} — {extra.label}",
                    "small",
                )
                for extra in variant.extras
            )
            edit = f'<span class="edit">{_esc(variant.label)}</span>' if show_edit else ""
            lines.append(f'<div class="xline">{edit}<div class="strip">{figures}</div></div>')
        return f'<div class="group extras"><h3>Intermediates</h3>{"".join(lines)}</div>'


def _counts(rows: Sequence[GalleryRow]) -> dict[str, int]:
    """total plus one entry per status: the four known ones always, then any others."""
    tally = Counter(_css_token(row.status) for row in rows)
    counts = {"total": len(rows)}
    for status in STATUSES:
        counts[status] = tally.pop(status, 0)
    counts.update(sorted(tally.items()))
    return counts


def _summary(counts: dict[str, int]) -> str:
    items = "".join(
        f'<div class="count c-{_esc(name)}" data-count="{_esc(name)}">'
        f'<span class="n">{value}</span><span class="k">{_esc(name)}</span></div>'
        for name, value in counts.items()
    )
    return f'<div class="counts">{items}</div>'


def _filters(counts: dict[str, int]) -> tuple[str, str]:
    """The filter bar (radio buttons, no JavaScript) and the CSS rules that make it work."""
    statuses = [name for name, value in counts.items() if name != "total" and value]
    if len(statuses) < 2:
        return "", ""
    buttons = ['<input type="radio" name="f" id="f-all" checked><label for="f-all">all</label>']
    rules = []
    for status in statuses:
        token = _esc(status)
        buttons.append(
            f'<input type="radio" name="f" id="f-{token}">'
            f'<label for="f-{token}">{token} only</label>'
        )
        rules.append(
            f'body:has(#f-{token}:checked) .row:not([data-status="{token}"]){{display:none}}'
        )
    bar = f'<nav class="filters" aria-label="filter rows">show {"".join(buttons)}</nav>'
    return bar, "\n".join(rules)


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_esc(note)}</li>" for note in notes)
    return f'<ul class="notes">{items}</ul>'


_CSS = """
:root{--main:%(main)dpx;--sweep:%(sweep)dpx;--small:%(small)dpx;--ink:#1d232b;--muted:#66707c;
--line:#e3e1dc;--bg:#f5f4f1;--card:#fff;--ok:#1f7a4d;--bad:#b42318;--warn:#a15c07;--skip:#5b6573}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.top{background:var(--card);border-bottom:1px solid var(--line);padding:22px 32px 16px}
h1{margin:0 0 2px;font-size:22px;font-weight:650;letter-spacing:-.01em}
.sub{color:var(--muted);font-size:12px;margin-bottom:14px}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.count{border:1px solid var(--line);border-radius:10px;padding:6px 14px;min-width:96px;
background:#fbfbfa}
.count .n{display:block;font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.count .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.c-succeeded .n{color:var(--ok)}.c-failed .n{color:var(--bad)}
.c-cancelled .n{color:var(--warn)}.c-skipped .n{color:var(--skip)}
.notes{margin:0 0 12px;padding:8px 14px 8px 30px;background:#fff8e6;border:1px solid #f0dca8;
border-radius:8px;color:#6b4a05}
.filters{color:var(--muted);font-size:13px;display:flex;align-items:center;gap:6px;flex-wrap:wrap}
.filters input{position:absolute;opacity:0;pointer-events:none}
.filters label{border:1px solid var(--line);border-radius:999px;padding:3px 12px;cursor:pointer;
background:#fff;color:var(--ink)}
.filters input:checked+label{background:var(--ink);color:#fff;border-color:var(--ink)}
.filters input:focus-visible+label{outline:2px solid #4a7bd0;outline-offset:2px}
main{padding:18px 32px 40px}
.row{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--ok);
border-radius:10px;margin:0 0 14px;padding:12px 16px 14px}
.st-failed{border-left-color:var(--bad)}.st-cancelled{border-left-color:var(--warn)}
.st-skipped{border-left-color:#aab1ba}
header{display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px;margin-bottom:8px}
.num{color:var(--muted);font-size:12px;text-decoration:none;font-variant-numeric:tabular-nums}
.num::before{content:"#"}
.name{margin:0;font-size:15px;font-weight:600;overflow-wrap:anywhere}
.badge{font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.05em;
border-radius:999px;padding:2px 9px;background:#eef1f4;color:var(--skip)}
.b-succeeded{background:#e5f4ec;color:var(--ok)}.b-failed{background:#fde8e6;color:var(--bad)}
.b-cancelled{background:#fdf0dc;color:var(--warn)}
.note{font-size:12px;color:#6b4a05;background:#fff8e6;border:1px solid #f0dca8;border-radius:6px;
padding:1px 8px}
.details{display:flex;flex-wrap:wrap;gap:4px 14px;color:var(--muted);font-size:12px;
flex-basis:100%%}
.details b{font-weight:600;color:#3c444e}
.error{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:baseline;background:#fef3f2;
border:1px solid #f6c7c2;border-radius:8px;padding:8px 12px;margin:0 0 10px;color:#7a1a12}
.error .code{font:600 13px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
color:var(--bad);background:#fff;border:1px solid #f6c7c2;border-radius:5px;padding:1px 7px}
.error .msg{overflow-wrap:anywhere}
.body{display:flex;flex-wrap:wrap;gap:14px 28px;align-items:flex-start}
.group{min-width:0}
.results{max-width:100%%}
h3{margin:0 0 6px;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.06em;
color:var(--muted)}
h3 small{font-size:11px;text-transform:none;letter-spacing:0;font-weight:400}
.strip{display:flex;gap:10px;overflow-x:auto;padding-bottom:2px}
.fig{margin:0;flex:none}
.pic{display:block;border-radius:6px;overflow:hidden;background:#ecebe7}
.pic img{display:block;object-fit:contain;width:var(--main);height:var(--main)}
.sweep .pic img,.sweep .ph{width:var(--sweep);height:var(--sweep)}
.small .pic img,.small .ph{width:var(--small);height:var(--small)}
.main .ph{width:var(--main);height:var(--main)}
.ph{display:flex;flex-direction:column;align-items:center;justify-content:center;gap:6px;
text-align:center;padding:10px;color:var(--muted);font-size:12px;border:1px dashed #c9c6bf;
background:repeating-linear-gradient(45deg,#f7f6f3 0 8px,#f1f0ec 8px 16px);overflow-wrap:anywhere}
.ph a{color:#3b63a8}
a.pic:hover img{opacity:.9}
figcaption{margin-top:4px;font-size:12px;line-height:1.3;max-width:var(--main)}
.sweep figcaption{max-width:var(--sweep)}.small figcaption{max-width:var(--small)}
.lbl{font-weight:600;display:block;overflow-wrap:anywhere}
.cap{color:var(--muted);display:block}
.xline{display:flex;gap:10px;align-items:flex-start;margin-bottom:8px}
.edit{font-size:12px;font-weight:600;min-width:64px;padding-top:2px;overflow-wrap:anywhere}
.empty{color:var(--muted);padding:30px 0}
footer{color:var(--muted);font-size:12px;padding:0 32px 30px}
@media print{body{background:#fff}.filters{display:none}.row{break-inside:avoid}
.strip{overflow:visible;flex-wrap:wrap}}
"""


def _css(thumb_size: int) -> str:
    main = min(thumb_size, 180)
    return _CSS % {"main": main, "sweep": round(main * 0.8), "small": round(main * 0.64)}


def render_page(
    out_dir: Path,
    rows: Sequence[GalleryRow],
    thumbs: dict[Path, Thumb],
    *,
    title: str,
    notes: Sequence[str],
    thumb_size: int,
) -> str:
    """The whole index.html as a string."""
    page = _Page(out_dir, thumbs)
    counts = _counts(rows)
    filter_bar, filter_css = _filters(counts)
    body = "\n".join(page.row(index, row) for index, row in enumerate(rows, start=1))
    if not rows:
        body = '<p class="empty">No inputs.</p>'
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src 'self' file: data:; style-src 'unsafe-inline'\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_css(thumb_size)}\n{filter_css}</style>\n"
        "</head><body>\n"
        f'<div class="top"><h1>{_esc(title)}</h1>'
        f'<div class="sub">Generated by facedit on {_esc(generated)} · click any picture '
        "for the full-size file</div>\n"
        f"{_summary(counts)}\n{_notes(notes)}\n{filter_bar}</div>\n"
        f"<main>\n{body}\n</main>\n"
        f"<footer>{counts['total']} inputs</footer>\n"
        "</body></html>\n"
    )


def write_gallery(
    out_dir: Path,
    rows: Sequence[GalleryRow],
    *,
    title: str,
    notes: Sequence[str] = (),
    thumb_size: int = 256,
    workers: int = 4,
) -> Path:
    """Write out_dir/index.html (+ out_dir/thumbs/) and return the index path."""
    if thumb_size < 16:
        raise ValueError(f"thumb_size must be at least 16, not {thumb_size}")
    out_dir = Path(os.path.abspath(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    thumbs = make_thumbnails(out_dir, _all_sources(out_dir, rows), thumb_size, workers)
    text = render_page(out_dir, rows, thumbs, title=title, notes=notes, thumb_size=thumb_size)
    index = out_dir / "index.html"
    partial = out_dir / f".index.html.{os.getpid()}.part"
    partial.write_text(text, encoding="utf-8", errors="replace")
    os.replace(partial, index)
    return index
