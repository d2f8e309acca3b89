"""The before/after gallery (facedit.gallery) built from real files and opened in Chromium.

The browser tests load ``index.html`` over ``file://`` in headless Chromium (Debian's
``/usr/bin/chromium``, see tests/browser.py) and check what a person would see: every
picture decodes, one card per input, error codes on failed rows, the counts at the top, and
links that lead to the full-size files. The first tests need no browser: escaping and the
"no preview" placeholder for sources that cannot be decoded.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from facedit.gallery import (
    GalleryImage,
    GalleryRow,
    GalleryVariant,
    write_gallery,
)
from tests.browser import chromium, load_all_images, page_rows
from tests.unit.core.image_factory import jpeg_bytes, png_header_only

SPECIAL_NAME = "client photo #1 50% ?é.jpg"
HOSTILE_NAME = '<img src=x onerror="alert(1)"> & <b>bold</b>.jpg'
TOY_NOTE = "toy GAN: untrained models, not a meaningful edit"
SWEEP = ("smile-3", "smile-2", "smile-1", "smile+0", "smile+1", "smile+2", "smile+3")


# --------------------------------------------------------------------------- helpers


def _save(image: Image.Image, path: Path, fmt: str | None = None, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **params)
    return path


def _stand_in(face: Path, path: Path, step: int = 0) -> Path:
    """A stand-in "result": the face flipped and shaded, written as PNG or JPEG by suffix."""
    with Image.open(face) as image:
        image = image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.point(lambda v: min(255, max(0, v + 12 * step)))
    return _save(image, path, "JPEG" if path.suffix.lower() == ".jpg" else "PNG")


def _stand_in_extras(face: Path, folder: Path, label: str) -> tuple[GalleryImage, ...]:
    """mask (greyscale PNG), naive (JPEG) and poisson (PNG) files for one variant."""
    with Image.open(face) as image:
        grey = image.convert("L").resize((256, 256))
    mask = grey.point(lambda v: 255 if v > 128 else 0)
    return (
        GalleryImage("mask", _save(mask, folder / f"{label}.mask.png", "PNG")),
        GalleryImage("naive", _stand_in(face, folder / f"{label}.naive.jpg", 1), "seam 7.80"),
        GalleryImage("poisson", _stand_in(face, folder / f"{label}.poisson.png", 2), "seam 2.31"),
    )


def _file_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(unquote(parsed.path))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, dev_faces) -> dict:
    """A gallery of real face photos: successes, a 7-step sweep, failures, odd names."""
    root = tmp_path_factory.mktemp("gallery")
    out = root / "out"
    faces = dev_faces[:6]
    work = root / "work dir #1"  # results live outside the gallery folder, with odd characters
    inputs = root / "inputs"
    inputs.mkdir()

    special = inputs / SPECIAL_NAME
    special.write_bytes(faces[1].read_bytes())
    text_file = inputs / "notes.jpg"
    text_file.write_text("hello, I am a text file, not a JPEG\n" * 20)
    empty = inputs / "empty.png"
    empty.write_bytes(b"")
    missing = inputs / "missing.jpg"

    # a result stored inside the gallery folder and named relative to it
    relative_result = Path("outputs") / "b1" / "j1" / "result.png"
    _stand_in(faces[0], out / relative_result)

    rows = [
        GalleryRow(
            name=faces[0].name,
            status="succeeded",
            original=faces[0],
            variants=(
                GalleryVariant(
                    "smile+2",
                    GalleryImage("result", relative_result, "seam 2.31"),
                    _stand_in_extras(faces[0], work / "r0", "smile+2"),
                ),
            ),
            details=(("suppressor", "poisson"), ("seconds", "1.42")),
            note=TOY_NOTE,
        ),
        GalleryRow(
            name=SPECIAL_NAME,
            status="succeeded",
            original=special,
            variants=(
                GalleryVariant(
                    "age-1", GalleryImage("result", _stand_in(faces[1], work / "é #1 ?.png"))
                ),
            ),
        ),
        GalleryRow(
            name=faces[2].name,
            status="succeeded",
            original=faces[2],
            variants=tuple(
                GalleryVariant(
                    label,
                    GalleryImage("result", _stand_in(faces[2], work / "sweep" / f"{i}.jpg", i - 3)),
                    _stand_in_extras(faces[2], work / "sweep", label) if i in (0, 6) else (),
                )
                for i, label in enumerate(SWEEP)
            ),
            details=(("suppressor", "maresunet"),),
        ),
        GalleryRow(
            name=faces[3].name,
            status="skipped",
            original=faces[3],
            variants=(
                GalleryVariant(
                    "smile+2", GalleryImage("result", _stand_in(faces[3], work / "s.png"))
                ),
            ),
            note="done in an earlier run",
        ),
        GalleryRow(
            name=str(missing),
            status="failed",
            original=None,
            error_code="input_not_found",
            error_message=f"{missing}: no such file",
        ),
        GalleryRow(
            name=str(missing) + " (given as path)",
            status="failed",
            original=missing,
            error_code="input_not_found",
            error_message="the path does not exist",
        ),
        GalleryRow(
            name=text_file.name,
            status="failed",
            original=text_file,
            error_code="invalid_image",
            error_message="notes.jpg: not a recognised image format",
        ),
        GalleryRow(
            name=empty.name,
            status="failed",
            original=empty,
            error_code="invalid_image",
            error_message="empty.png: the file is empty (0 bytes)",
        ),
        GalleryRow(
            name=HOSTILE_NAME,
            status="failed",
            original=faces[4],
            error_code="internal_error",
            error_message="<script>alert('boom')</script> went wrong & stopped",
        ),
        GalleryRow(
            name=faces[5].name,
            status="cancelled",
            original=faces[5],
            error_code="cancelled",
            error_message="the batch was cancelled",
        ),
    ]
    notes = ("toy preset: outputs are not meaningful edits", "2 edits: smile+2, age-1")
    index = write_gallery(out, rows, title="Batch b1 — before / after", notes=notes)
    return {"index": index, "rows": rows, "notes": notes, "out": out, "special": special}


# --------------------------------------------------------------------------- no browser


def test_escapes_user_strings_and_quotes_links(tmp_path, dev_faces):
    odd = tmp_path / "in dir" / "a b#c%d?é.png"
    _stand_in(dev_faces[0], odd)
    row = GalleryRow(
        name=HOSTILE_NAME,
        status="failed",
        original=odd,
        error_code='bad"code<',
        error_message="<script>alert(1)</script>",
        details=(("<k>", "v & w"),),
        note="<i>note</i>",
        variants=(GalleryVariant("<smile>", GalleryImage("<result>", odd, "<cap>")),),
    )
    index = write_gallery(tmp_path / "out", [row], title="<title>&", notes=["<note>"])
    text = index.read_text(encoding="utf-8")
    for raw in (HOSTILE_NAME, "<script>", "<i>note</i>", "<smile>", "<cap>", "<k>", "<note>"):
        assert raw not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "bad&quot;code&lt;" in text and "v &amp; w" in text
    assert "<title>&lt;title&gt;&amp;</title>" in text
    assert 'href="../in%20dir/a%20b%23c%25d%3F%C3%A9.png"' in text


def test_non_utf8_file_names(tmp_path, dev_faces):
    name = os.fsdecode(b"caf\xe9 #2.png")  # a Latin-1 name on a UTF-8 system: a surrogate
    source = _stand_in(dev_faces[0], tmp_path / name)
    row = GalleryRow(name=name, status="succeeded", original=source)
    text = write_gallery(tmp_path / "out", [row], title=name).read_text(encoding="utf-8")
    assert 'href="../caf%E9%20%232.png"' in text  # the file's real bytes, percent-encoded
    assert "caf\ufffd #2.png" in text and "<img " in text
    assert "<script" not in text.lower()


def test_undecodable_sources_get_a_placeholder_not_an_img(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = _save(Image.new("RGB", (300, 200), (40, 90, 160)), src / "good.png")
    bad = {
        "missing.jpg": None,
        "text.jpg": b"not an image\n" * 50,
        "zero.png": b"",
        "truncated.jpg": jpeg_bytes(256, 256)[:700],
        "bomb.png": png_header_only(20000, 20000),  # > 2x MAX_IMAGE_PIXELS: DecompressionBombError
        "warn-bomb.png": png_header_only(10000, 9000),  # 1x..2x: DecompressionBombWarning
    }
    for name, data in bad.items():
        if data is not None:
            (src / name).write_bytes(data)
    folder = src / "a folder.png"
    folder.mkdir()
    rows = [GalleryRow(name="good", status="succeeded", original=good)]
    rows += [
        GalleryRow(name=name, status="failed", original=src / name, error_code="invalid_image")
        for name in [*bad, folder.name]
    ]
    index = write_gallery(tmp_path / "out", rows, title="t")
    text = index.read_text(encoding="utf-8")
    assert text.count("<img ") == 1
    reasons = re.findall(r"no preview: ([^<]+)<", text)
    assert reasons == [
        "file not found",
        "not a recognised image",
        "empty file (0 bytes)",
        "truncated or corrupt image data",
        "image too large to preview",
        "image too large to preview",
        "not a file",
    ]
    assert len(list((tmp_path / "out" / "thumbs").glob("*.jpg"))) == 1
    assert not list((tmp_path / "out" / "thumbs").glob(".*"))  # no partial files left


def _cmyk_jpeg(path: Path) -> Path:
    return _save(Image.new("CMYK", (120, 80), (0, 200, 200, 0)), path, "JPEG")


def test_unusual_modes_thumbnail_to_rgb(tmp_path):
    src = tmp_path / "src"
    ramp16 = np.tile(np.linspace(0, 65535, 400, dtype=np.float64), (300, 1)).astype(np.uint16)
    sources = {
        "grey16.png": _save(Image.fromarray(ramp16), src / "grey16.png"),
        "int32.tif": _save(Image.fromarray(ramp16.astype(np.int32)), src / "int32.tif"),
        "palette.png": _save(Image.new("RGB", (90, 90), (200, 30, 30)).convert("P"),
                             src / "palette.png"),
        "rgba.png": _save(Image.new("RGBA", (90, 90), (0, 0, 0, 0)), src / "rgba.png"),
        "la.png": _save(Image.new("LA", (90, 90), (20, 255)), src / "la.png"),
        "bilevel.png": _save(Image.new("1", (90, 90), 1), src / "bilevel.png"),
        "cmyk.jpg": _cmyk_jpeg(src / "cmyk.jpg"),
        "big.jpg": _save(Image.new("RGB", (2000, 1000), (10, 120, 10)), src / "big.jpg", "JPEG"),
    }
    rows = [GalleryRow(name=n, status="succeeded", original=p) for n, p in sources.items()]
    out = tmp_path / "out"
    text = write_gallery(out, rows, title="modes", thumb_size=128).read_text(encoding="utf-8")
    assert "no preview" not in text
    imgs = re.findall(r'<img src="thumbs/([0-9a-f]+\.jpg)"[^>]* width="(\d+)" height="(\d+)"', text)
    assert len(imgs) == len(sources)
    thumbs = {}
    for (name, width, height), source in zip(imgs, sources, strict=True):
        with Image.open(out / "thumbs" / name) as thumb:
            assert thumb.format == "JPEG" and thumb.mode == "RGB"
            assert thumb.size == (int(width), int(height)) and max(thumb.size) <= 128
            thumbs[source] = np.asarray(thumb, dtype=np.float64)
    # 16-bit ramps are scaled to 8 bit, not clipped: the right half is not all white
    for name in ("grey16.png", "int32.tif"):
        pixels = thumbs[name]
        assert pixels.shape[1] == 128
        assert abs(pixels[:, :64].mean() - 64) < 12 and abs(pixels[:, 64:].mean() - 191) < 12
    assert thumbs["big.jpg"].shape[:2] == (64, 128)
    assert thumbs["rgba.png"].mean() > 240  # transparent → white background
    assert thumbs["palette.png"][..., 0].mean() > 150  # red survives the palette
    assert thumbs["cmyk.jpg"][..., 0].mean() > 150 and thumbs["cmyk.jpg"][..., 1].mean() < 120


def test_thumbnails_are_reused_and_refreshed(tmp_path, dev_faces):
    source = _stand_in(dev_faces[0], tmp_path / "r.png")
    rows = [GalleryRow(name="a", status="succeeded", original=dev_faces[0],
                       variants=(GalleryVariant("smile+1", GalleryImage("result", source)),))]
    out = tmp_path / "out"
    write_gallery(out, rows, title="t")
    first = {p.name: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir()}
    assert len(first) == 2
    write_gallery(out, rows, title="t")
    assert {p.name: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir()} == first
    _stand_in(dev_faces[1], source)  # the result changed: a new thumbnail, the old one stays
    write_gallery(out, rows, title="t")
    assert len(list((out / "thumbs").iterdir())) == 3


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (200, 100), (200, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    (tmp_path / "rotated.jpg").write_bytes(buffer.getvalue())
    row = GalleryRow(name="r", status="succeeded", original=tmp_path / "rotated.jpg")
    text = write_gallery(tmp_path / "out", [row], title="t").read_text(encoding="utf-8")
    assert 'width="100" height="200"' in text  # stored 200x100, shown upright


# --------------------------------------------------------------------------- browser


def test_gallery_renders_in_chromium(page, gallery):
    rows: list[GalleryRow] = gallery["rows"]
    page.goto(gallery["index"].as_uri())

    assert page_rows(page) == len(rows)
    images = load_all_images(page)
    broken = [image for image in images if image["natural"] <= 0]
    assert not broken, broken
    assert all(image["loading"] == "lazy" for image in images)
    assert all(
        (image["natural"], image["naturalH"]) == (image["width"], image["height"])
        for image in images
    )
    # 6 originals that can be thumbnailed, 10 results (one is a 7-step sweep), 9 extras
    assert len(images) == 6 + 10 + 9
    assert not page.dialogs

    counts = {
        name: page.locator(f'.counts [data-count="{name}"] .n').inner_text()
        for name in ("total", "succeeded", "failed", "cancelled", "skipped")
    }
    assert counts == {"total": "10", "succeeded": "3", "failed": "5", "cancelled": "1",
                      "skipped": "1"}
    top = page.locator(".top").inner_text()
    for note in gallery["notes"]:
        assert note in top

    for number, row in enumerate(rows, start=1):
        card = page.locator(f"#r{number}")
        card.scroll_into_view_if_needed()
        assert card.locator("h2.name").inner_text() == row.name
        assert card.get_attribute("data-status") == row.status
        if row.error_code:
            error = card.locator(".error")
            assert error.is_visible()
            assert error.locator(".code").inner_text() == row.error_code
            assert error.locator(".msg").inner_text() == row.error_message
        if row.note:
            assert row.note in card.locator("header").inner_text()
        for key, value in row.details:
            assert f"{key} {value}" in card.locator(".details").inner_text()

    # the sweep is one strip of 7 labelled results
    sweep = page.locator("#r3 .results .fig")
    assert sweep.count() == 7
    assert [sweep.nth(i).locator(".lbl").inner_text() for i in range(7)] == list(SWEEP)
    assert page.locator("#r3 .extras .xline").count() == 2

    # failed rows whose original cannot be thumbnailed say so instead of a broken picture
    for number, reason in ((5, "no input file"), (6, "file not found"),
                           (7, "not a recognised image"), (8, "empty file (0 bytes)")):
        assert page.locator(f"#r{number} .ph").inner_text().startswith(f"no preview: {reason}")
        assert page.locator(f"#r{number} img").count() == 0
    assert page.locator("#r9 img").count() == 1  # failed, but the original still shows


def test_gallery_links_lead_to_existing_files(page, gallery):
    page.goto(gallery["index"].as_uri())
    links = page.evaluate(
        "() => Array.from(document.querySelectorAll('main a[href]'))"
        ".filter(a => !a.getAttribute('href').startsWith('#')).map(a => a.href)"
    )
    assert len(links) == 25 + 2  # every picture, plus "open file" for notes.jpg and empty.png
    targets = [_file_path(link) for link in links]
    missing = [str(target) for target in targets if not target.is_file()]
    assert not missing
    assert gallery["special"] in targets  # the name with spaces, '#', '%', '?' and 'é'
    assert gallery["out"] / "outputs" / "b1" / "j1" / "result.png" in targets
    # a picture is one click from its full-size file
    first = page.locator("#r1 a.pic").first
    full = _file_path(first.evaluate("a => a.href"))
    assert full == Path(gallery["rows"][0].original)


def test_gallery_filter_works_without_javascript(browser, gallery):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1400,
                                                                        "height": 900})
    try:
        page = context.new_page()
        page.goto(gallery["index"].as_uri())
        assert page.locator("section.row").count() == 10
        page.locator('label[for="f-failed"]').click()
        visible = page.locator("section.row:visible")
        assert visible.count() == 5
        assert all(
            visible.nth(i).get_attribute("data-status") == "failed" for i in range(5)
        )
        page.locator('label[for="f-all"]').click()
        assert page.locator("section.row:visible").count() == 10
    finally:
        context.close()


def test_thousand_row_gallery(page, tmp_path, dev_faces):
    sources = dev_faces[:5]
    results = [_stand_in(face, tmp_path / "results" / f"{i}.png") for i, face in
               enumerate(sources)]
    rows = []
    for i in range(1000):
        k = i % len(sources)
        if i % 10 == 9:
            rows.append(GalleryRow(name=f"missing_{i:04d}.jpg", status="failed",
                                   original=tmp_path / f"missing_{i:04d}.jpg",
                                   error_code="input_not_found", error_message="no such file"))
            continue
        variant = GalleryVariant("smile+2", GalleryImage("result", results[k], f"seam {k}.0"))
        rows.append(GalleryRow(name=f"client_{i:04d}.jpg", status="succeeded",
                               original=sources[k], variants=(variant,),
                               details=(("seconds", f"{k + 1}.00"),)))
    out = tmp_path / "out"
    started = time.perf_counter()
    index = write_gallery(out, rows, title="1,000 inputs", workers=4)
    elapsed = time.perf_counter() - started
    print(f"write_gallery: 1,000 rows in {elapsed:.2f} s")
    assert elapsed < 60, f"write_gallery took {elapsed:.1f} s for 1,000 rows"
    assert len(list((out / "thumbs").glob("*.jpg"))) == 10

    started = time.perf_counter()
    page.goto(index.as_uri())
    assert page.locator("section.row").count() == 1000
    print(f"page load: {time.perf_counter() - started:.2f} s")
    assert page.locator('.counts [data-count="total"] .n').inner_text() == "1000"
    assert page.locator('.counts [data-count="failed"] .n').inner_text() == "100"
    assert page.locator("img").count() == 900 * 2
    # the last rows' pictures load when scrolled to
    last = page.locator("#r999")
    last.scroll_into_view_if_needed()
    for i in range(2):
        image = last.locator("img").nth(i)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle(), timeout=15_000)
    assert page.locator("#r1000 .error .code").inner_text() == "input_not_found"
