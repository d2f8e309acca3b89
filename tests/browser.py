"""Headless Chromium for browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright's own browser download (``playwright install``) is never used; the tests launch
the system Chromium that ``make test`` installs (``make browser``). A missing browser is a
test failure with instructions, not a skip.

    with chromium() as browser:
        page = browser.new_page()
        page.goto(index.as_uri())
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("FACEDIT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAUNCH_TIMEOUT_MS = 60_000


def require_chromium() -> Path:
    """The Chromium executable, or a test failure saying how to install it."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. `make test` installs it (its `browser` target "
            "runs `apt-get install -y chromium`); or install Debian's chromium package "
            "yourself, or point FACEDIT_TEST_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (system binary) under Playwright; closed on exit."""
    executable = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package `playwright` is missing; `make test` installs it "
            "(pip install -e '.[dev]'). Do not run `playwright install`: the tests use "
            f"{executable}.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable),
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=LAUNCH_TIMEOUT_MS,
        )
        try:
            yield browser
        finally:
            browser.close()


def page_rows(page) -> int:
    """The gallery's rows (one per input)."""
    return page.locator("section.row").count()


def load_all_images(page) -> list[dict]:
    """Scroll every <img> into view (they are lazy), wait for it, report what it decoded to."""
    return page.evaluate(
        """async () => {
            const settle = (img) => new Promise((resolve) => {
                if (img.complete) return resolve();
                img.addEventListener('load', resolve, {once: true});
                img.addEventListener('error', resolve, {once: true});
                setTimeout(resolve, 15000);
            });
            const out = [];
            for (const img of Array.from(document.images)) {
                img.scrollIntoView({block: 'center'});
                await settle(img);
                out.push({src: img.getAttribute('src'), natural: img.naturalWidth,
                          naturalH: img.naturalHeight, width: +img.getAttribute('width'),
                          height: +img.getAttribute('height'),
                          loading: img.getAttribute('loading')});
            }
            return out;
        }"""
    )
