"""make site: the course site builds offline from executed notebooks, and every page renders in a headless Chromium
with its figures loaded and its internal links resolving (screenshots in build/test-screenshots/site/)."""

import importlib.util
import shutil
import sys

import pytest
from browser import SCREENSHOTS, browser, check_page, executed_build  # noqa: F401 - browser is a fixture
from conftest import ROOT

spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
sys.modules["build_site"] = build_site
spec.loader.exec_module(build_site)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site from a build/ where notebook 05 was executed (a figure and a headline) and the others were not."""
    build = executed_build(tmp_path_factory.mktemp("build"))
    out = tmp_path_factory.mktemp("site")
    return build_site.build_site(build, out), out


def test_the_home_page_has_the_course_table(site):
    pages, out = site
    home = pages[0].read_text()
    assert pages[0].name == "index.html" and len(pages) == 1 + len(list((ROOT / "notebooks").glob("0*.ipynb")))
    for needle in ("05_human_parsing.html", "aware_miou 0.1232", "smoke mode, 41 s", "not run", "Kaggle", "Colab",
                   "LIP (Look Into Person)"):
        assert needle in home, needle
    assert "https://" not in (out / "style.css").read_text()  # nothing fetched to show a page


def test_every_page_renders_with_its_figures_and_links_in_chromium(site, browser):  # noqa: F811
    pages, out = site
    shots = SCREENSHOTS / "site"
    shutil.rmtree(shots, ignore_errors=True)
    for path in pages:
        result = check_page(browser, path, out, shots / f"{path.stem}.png")
        assert result["text"] > 200, path.name
        assert not result["broken_images"], (path.name, result["broken_images"])
        assert not result["broken_links"], (path.name, result["broken_links"])
        assert not result["errors"], (path.name, result["errors"])
        if path.name == "05_human_parsing.html":
            assert result["images"] >= 1  # the run's figure, embedded
    assert (shots / "index.png").stat().st_size > 10_000
