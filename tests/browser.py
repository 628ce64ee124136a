"""A headless Chromium (the Debian package) driven by Playwright, for the site and slides tests.

Tests skip when no Chromium is installed, unless COURSE_REQUIRE_BROWSER=1 (set by .ci/run), where they fail."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "test-screenshots"


def executed_build(build: Path) -> Path:
    """A build/ as make run leaves it, with notebook 05 executed (a figure, printed text, its headline) and the
    other notebooks not run."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    nb = nbformat.read(ROOT / "notebooks" / "05_human_parsing.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "nbval-skip" not in c.metadata.get("tags", []))
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(buffer.getvalue())
                                                                 .decode()}),
                    nbformat.v4.new_output("stream", name="stdout", text="hello from the run\n")]
    nbformat.write(nb, build / "05_human_parsing.ipynb")
    (build / "results").mkdir()
    (build / "results" / "05_human_parsing.json").write_text(json.dumps({"mode": "smoke", "aware_miou": 0.1232}))
    (build / "results" / "05_human_parsing.run.json").write_text(
        json.dumps({"mode": "smoke", "seconds": 41.1, "error": None, "finished": "2026-11-26 10:00"}))
    return build


def chromium_path() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        message = "no Chromium: apt-get install chromium (Debian) to run the browser tests"
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def check_page(browser, path: Path, root: Path, shot: Path, ready: str | None = None, keys: int = 0) -> dict:
    """Open ``path``: it must render text, every image that is not fetched from the network must load, and every
    relative link must lead to a file under ``root`` (or an anchor on the page). Saves a screenshot to ``shot``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed to load {request.url}")
            if request.url.startswith("file:") else None)  # a local file the page needs (scripts, fonts, css)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    if ready:  # a JavaScript condition that holds once the page has set itself up (reveal.js loads late)
        page.wait_for_function(ready, timeout=15_000)
    slides = page.evaluate("() => document.querySelectorAll('.reveal .slides section:not(.stack)').length")
    for _ in range(keys):  # step through the deck: slide changes run the template's handlers
        page.keyboard.press("Space")
        page.wait_for_timeout(30)
    text = page.evaluate("() => document.body.innerText.trim().length")
    images = page.evaluate("""() => [...document.images].map(i => ({src: i.currentSrc || i.src,
                                       ok: i.complete && i.naturalWidth > 0}))""")
    hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    ids = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    page.close()
    local_images = [i for i in images if not i["src"].startswith(("http://", "https://"))]
    broken_images = [i["src"][:80] for i in local_images if not i["ok"]]
    broken_links = []
    for href in hrefs:
        parsed = urlparse(href)
        if parsed.scheme in ("http", "https", "mailto"):
            continue
        if not parsed.path:  # an anchor on this page
            if parsed.fragment and not {parsed.fragment, unquote(parsed.fragment)} & ids:  # as browsers look
                broken_links.append(href)
        elif not (path.parent / unquote(parsed.path)).resolve().is_relative_to(root.resolve()) \
                or not (path.parent / unquote(parsed.path)).is_file():
            broken_links.append(href)
    return {"text": text, "images": len(local_images), "broken_images": broken_images, "slides": slides,
            "broken_links": broken_links, "errors": errors}
