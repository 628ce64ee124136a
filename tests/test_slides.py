"""make slides: reveal.js decks whose slide boundaries come from the notebooks' headings and lengths, shown in a
headless Chromium with no network (reveal.js and its scripts vendored); screenshots in build/test-screenshots/slides."""

import importlib.util
import shutil
import subprocess
import sys

import nbformat
import pytest
from browser import SCREENSHOTS, browser, check_page, executed_build  # noqa: F401 - browser is a fixture
from conftest import ROOT

spec = importlib.util.spec_from_file_location("build_slides", ROOT / "scripts" / "build_slides.py")
build_slides = importlib.util.module_from_spec(spec)
sys.modules["build_slides"] = build_slides
spec.loader.exec_module(build_slides)


def test_slide_boundaries_follow_headings_and_length():
    v4 = nbformat.v4
    install = v4.new_code_cell("pip install", metadata={"tags": ["nbval-skip"]})
    cells = [v4.new_markdown_cell("# Title"), install, v4.new_markdown_cell("## 1. Ideas"),
             v4.new_markdown_cell("### A method"), v4.new_code_cell("x = 1"),
             v4.new_code_cell("\n".join(f"line{k} = {k}" for k in range(30))), v4.new_markdown_cell("text")]
    kinds = [c.metadata["slideshow"]["slide_type"] for c in build_slides.with_slide_types(v4.new_notebook(cells=cells))
             .cells]
    assert kinds == ["slide", "skip", "slide", "subslide", "-", "subslide", "subslide"]
    assert all("slideshow" not in c.metadata for c in cells)  # the notebook itself is left as it was
    long = v4.new_markdown_cell("\n\n".join(f"paragraph {k} " + "word " * 30 for k in range(20)))
    parts = build_slides.with_slide_types(v4.new_notebook(cells=[v4.new_markdown_cell("## Section"), long])).cells
    assert len(parts) > 3 and [c.metadata["slideshow"]["slide_type"] for c in parts[:3]] == ["slide", "-", "subslide"]
    assert "\n\n".join(c.source for c in parts[1:]) == long.source  # cut at paragraphs, nothing lost


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    build = executed_build(tmp_path_factory.mktemp("build"))
    out = tmp_path_factory.mktemp("slides")
    return build_slides.build_slides(build, out), out


def test_every_deck_runs_offline_in_chromium(decks, browser):  # noqa: F811
    slides, out = decks
    assert len(slides) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    shots = SCREENSHOTS / "slides"
    shutil.rmtree(shots, ignore_errors=True)
    for path in slides:
        html = path.read_text()
        assert 'src="require.js"' in html and 'href="reveal.js/dist/reveal.css"' in html  # the vendored copies
        result = check_page(browser, path, out, shots / f"{path.stem}.png", keys=12,
                            ready="() => document.querySelector('.reveal.ready') !== null")  # reveal.js is up
        assert not result["errors"] and not result["broken_images"] and not result["broken_links"], (path, result)
        assert result["slides"] >= 8, (path.name, result["slides"])


def test_the_vendored_files_are_in_git():
    """The slides load them; a file left out of git (an ignore rule) would break every deck on a fresh clone."""
    tracked = subprocess.run(["git", "ls-files", "vendor"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    for name in build_slides.VENDORED:
        assert f"vendor/{name}" in tracked.stdout.splitlines(), name
