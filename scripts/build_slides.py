"""reveal.js slides of every notebook (``make slides``) under ``build/slides/``, for presenting in class, offline.

Slide boundaries come from the notebook's structure, so authors keep no slide metadata: a ``#`` or ``##`` heading
starts a slide, a ``###`` heading a sub-slide (below it), and a slide that grows past about a screen continues on a
sub-slide (a figure fills one).
The install cell is skipped. Executed notebooks from ``make run`` are used where they exist (with their
figures), the notebooks without outputs otherwise. reveal.js, RequireJS and jQuery are copied from ``vendor/``
next to the slides instead of being fetched from a CDN.
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_site import site_links  # noqa: E402 - the same repository links as the site

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "vendor"
SCREEN_LINES = 14  # about what fits on a 960x700 slide at the template's font size
FIGURE_LINES = 14  # a figure fills a slide
WRAP = 60  # characters per line on a slide
VENDORED = ["reveal.js/dist/reveal.js", "reveal.js/dist/reveal.css", "reveal.js/dist/theme/white.css",
            "reveal.js/plugin/notes/notes.js", "require.js", "jquery.min.js"]  # what the slides load


def text_lines(text: str) -> int:
    """Lines on a slide: a long source line wraps every ``WRAP`` characters."""
    return sum(max(1, math.ceil(len(line) / WRAP)) for line in text.splitlines())


def cell_lines(cell) -> int:
    lines = text_lines(cell.source)
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" in data or "image/jpeg" in data or "image/svg+xml" in data:
            lines += FIGURE_LINES
        else:
            lines += min(len(str(output.get("text", data.get("text/plain", ""))).splitlines()), SCREEN_LINES)
    return lines


def split_long_markdown(cell) -> list:
    """A markdown cell longer than a screen, cut at paragraph breaks into cells that each fit (a paragraph or list
    longer than a screen stays whole: reveal.js scrolls it)."""
    if cell.cell_type != "markdown" or text_lines(cell.source) <= SCREEN_LINES:
        return [cell]
    chunks, current = [], []
    for paragraph in cell.source.split("\n\n"):
        if current and text_lines("\n\n".join([*current, paragraph])) > SCREEN_LINES:
            chunks.append(current)
            current = []
        current.append(paragraph)
    chunks.append(current)
    return [nbformat.v4.new_markdown_cell("\n\n".join(chunk), metadata=copy.deepcopy(cell.metadata))
            for chunk in chunks]


def with_slide_types(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose cells carry ``metadata.slideshow.slide_type`` set from its headings and lengths, long
    markdown cells cut at paragraphs."""
    nb = copy.deepcopy(nb)
    nb.cells = [part for cell in nb.cells for part in split_long_markdown(cell)]
    filled = 0
    for cell in nb.cells:
        first = cell.source.lstrip().split("\n", 1)[0] if cell.cell_type == "markdown" else ""
        if "nbval-skip" in cell.metadata.get("tags", []):
            kind = "skip"  # the Kaggle/Colab install cell
        elif first.startswith(("# ", "## ")):
            kind, filled = "slide", 0
        elif first.startswith("### ") or (filled and filled + cell_lines(cell) > SCREEN_LINES):
            kind, filled = "subslide", 0  # a sub-heading, or the slide is full
        else:
            kind = "-"
        if kind != "skip":
            filled += cell_lines(cell)
        cell.metadata["slideshow"] = {"slide_type": kind}
    return nb


def build_slides(build: Path, out: Path) -> list[Path]:
    """Write the slides and the vendored scripts they load; returns the slide files."""
    missing = [name for name in VENDORED if not (VENDOR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"vendored files missing from {VENDOR}: {missing}; the slides would load nothing "
                                "(restore them from git, see vendor/README.md)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(VENDOR / "reveal.js", out / "reveal.js")
    for name in ("require.js", "jquery.min.js"):
        shutil.copy(VENDOR / name, out / name)
    exporter = SlidesExporter(template_name="course_reveal",
                              extra_template_basedirs=[str(Path(__file__).parent / "slides_template")],
                              reveal_url_prefix="reveal.js", reveal_theme="white", reveal_scroll=True,
                              require_js_url="require.js", jquery_url="jquery.min.js")
    written = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = build / source.name
        nb = nbformat.read(executed if executed.is_file() else source, as_version=4)
        body, _ = exporter.from_notebook_node(with_slide_types(nb), resources={"metadata": {"name": source.stem}})
        target = out / f"{source.stem}.slides.html"
        target.write_text(site_links(body, page_suffix=".slides.html"), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="where make run left the notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    args = parser.parse_args(argv)
    slides = build_slides(args.build, args.out)
    print(f"{len(slides)} slide decks in {args.out}; open one in a browser (arrow keys; S for speaker notes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
