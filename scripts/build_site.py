"""The course site (``make site``): static HTML under ``build/site/`` from the notebooks ``make run`` executed.

A home page with the course table (section, what it teaches, data, the time and GPU it needs, the headline numbers
of the last run and its mode, Kaggle and Colab links) and one page per notebook with its outputs and figures, linked
to the previous and next sections. A notebook that ``make run`` has not executed is shown without outputs, marked
"not run".

Built with nbconvert's ``basic`` template (the notebook body only, figures embedded as data URIs) inside a page of
our own with a local stylesheet: nothing is fetched from the network, to build or to view. Jupyter Book 2 would
fetch its theme and needs Node; Sphinx with myst-nb would bring a second configuration system for nine pages.
"""

from __future__ import annotations

import argparse
import html
import json
import posixpath
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kaggle_publish import datasets_used  # noqa: E402 - the datasets a notebook locates, as its Kaggle kernel

ROOT = Path(__file__).resolve().parent.parent
REPO_URL = "https://github.com/open-segmentation-course/segmentation-course"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; line-height: 1.5; }
header, footer { background: #f4f4f4; padding: 0.6em 2em; display: flex; gap: 1.5em; flex-wrap: wrap; }
main { max-width: 1100px; margin: 0 auto; padding: 1em 2em; }
a { color: #0b5cad; }
table.course { border-collapse: collapse; width: 100%; font-size: 0.92em; }
table.course th, table.course td { border: 1px solid #ccc; padding: 0.4em 0.6em; vertical-align: top;
  text-align: left; }
table.course th { background: #eee; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; }
.prompt { display: none; }
.output_area pre { background: #fff; border-left: 3px solid #ddd; }
.note { color: #8a4b00; }
"""


def first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return re.sub(r"\*\*|`", "", sentence)


def teaches(first_cell: str) -> str:
    """The first three points of the notebook's "You will learn" list, each up to its first colon or semicolon."""
    _, found, rest = first_cell.partition("You will learn")
    bullets = [line[2:] for line in rest.splitlines() if line.startswith("- ")] if found else []
    points = [re.split(r"[:;]\s", re.sub(r"\*|`", "", b), maxsplit=1)[0].strip().rstrip(";.") for b in bullets[:3]]
    return "; ".join(points)


def notebook_facts(source: Path) -> dict:
    """Number, title and what it teaches from the notebook's first cell; the datasets it locates."""
    nb = nbformat.read(source, as_version=4)
    lines = nb.cells[0].source.splitlines()
    title = next(line[2:].strip() for line in lines if line.startswith("# "))
    paragraphs = [p for p in nb.cells[0].source.split("\n\n") if p.strip() and not p.lstrip().startswith(("#", "[!["))]
    number = source.name[:2]
    datasets = datasets_used(source)
    return {"number": number, "stem": source.stem, "title": title,
            "summary": teaches(nb.cells[0].source) or (first_sentence(paragraphs[0]) if paragraphs else ""),
            "data": "; ".join(ds.title.split(":")[0] for ds in datasets) or "(generated in the notebook)"}


def run_facts(build: Path, stem: str) -> dict:
    """What make run recorded: mode, seconds, error (run_notebooks.py) and the headline numbers (runtime.report)."""
    facts = {}
    for name in (f"{stem}.run.json", f"{stem}.json"):  # make run's record, then the notebook's headline
        path = build / "results" / name
        if path.is_file():
            facts.update(json.loads(path.read_text()))
    return facts


def status_text(run: dict) -> str:
    if "seconds" in run:
        return f"{run.get('mode', '?')} mode, {run['seconds']:.0f} s"
    if "mode" in run:  # executed before make run recorded its time
        return f"{run['mode']} mode (time not recorded)"
    return "not run: shown without outputs (make run executes it)"


def links(stem: str) -> str:
    path = f"notebooks/{stem}.ipynb"
    kaggle = f"https://kaggle.com/kernels/welcome?src={REPO_URL}/blob/main/{path}"
    colab = f"https://colab.research.google.com/github/{REPO_URL.removeprefix('https://github.com/')}/blob/main/{path}"
    return f'<a href="{kaggle}">Kaggle</a> · <a href="{colab}">Colab</a>'


def headline(run: dict) -> str:
    numbers = {k: v for k, v in run.items() if k not in ("mode", "seconds", "error", "finished")}
    if run.get("error"):
        return f'<span class="note">failed: {html.escape(run["error"])}</span>'
    text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()) or "-"
    if numbers and run.get("mode") == "smoke":
        text = f'<span class="note">smoke run on the synthetic twin, not real results:</span> {text}'
    return text


def site_links(body: str, page_suffix: str = ".html") -> str:
    """Relative links in a notebook point into the repository: another notebook becomes its page here (the name
    with ``page_suffix``), any other file its page on GitHub."""
    def fix(match: re.Match) -> str:
        start, href = match.groups()
        if re.match(r"[a-z]+:|#", href):
            return match.group(0)
        target = posixpath.normpath(posixpath.join("notebooks", href))
        if target.startswith("notebooks/") and target.endswith(".ipynb"):
            return f'{start}{posixpath.basename(target)[:-len(".ipynb")]}{page_suffix}"'
        return f'{start}{REPO_URL}/blob/main/{target}"'

    return re.sub(r'(<a\s[^>]*?href=")([^"]*)"', fix, body)  # links only, not the page's own stylesheets


def page(title: str, body: str, nav: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<link rel="stylesheet" href="style.css"></head><body><header>{nav}</header><main>{body}</main>'
            f"<footer>{nav}</footer></body></html>\n")


def build_site(build: Path, out: Path) -> list[Path]:
    """Write the site; returns the pages, home page first."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "style.css").write_text(STYLE + HtmlFormatter().get_style_defs(".highlight"))
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    facts = [notebook_facts(path) for path in sources]
    exporter = HTMLExporter(template_name="basic")
    pages = []
    rows = []
    for k, (source, nb_facts) in enumerate(zip(sources, facts)):
        stem = nb_facts["stem"]
        executed = build / source.name
        run = run_facts(build, stem) if executed.is_file() else {}
        body, _ = exporter.from_notebook_node(nbformat.read(executed if executed.is_file() else source, as_version=4))
        status = status_text(run)
        nav = ['<a href="index.html">Course home</a>']
        if k > 0:
            nav.append(f'<a href="{facts[k - 1]["stem"]}.html">← {facts[k - 1]["number"]}</a>')
        if k + 1 < len(facts):
            nav.append(f'<a href="{facts[k + 1]["stem"]}.html">{facts[k + 1]["number"]} →</a>')
        nav.append(links(stem))
        intro = f'<p class="note">Last run: {html.escape(status)}.</p>'
        target = out / f"{stem}.html"
        target.write_text(page(nb_facts["title"], intro + site_links(body), " ".join(nav)), encoding="utf-8")
        pages.append(target)
        rows.append(f'<tr><td>{nb_facts["number"]}</td><td><a href="{stem}.html">{html.escape(nb_facts["title"])}'
                    f'</a></td><td>{html.escape(nb_facts["summary"])}</td><td>{html.escape(nb_facts["data"])}</td>'
                    f'<td>{html.escape(status)}; full mode: a Kaggle T4 x2</td><td>{headline(run)}</td>'
                    f"<td>{links(stem)}</td></tr>")
    table = ("<table class=\"course\"><tr><th>#</th><th>section</th><th>what it teaches</th><th>data</th>"
             "<th>time and GPU</th><th>headline numbers of the last run</th><th>open</th></tr>"
             + "".join(rows) + "</table>")
    intro = ("<h1>Image segmentation course</h1><p>One notebook per section. Each runs in <b>full mode</b> on the "
             "real dataset (a Kaggle T4 x2) or in <b>smoke mode</b> on a synthetic twin in under a minute on a CPU; "
             "the table shows what the last <code>make run</code> on this machine did.</p>")
    home = out / "index.html"
    home.write_text(page("Image segmentation course", intro + table, '<a href="index.html">Course home</a>'),
                    encoding="utf-8")
    return [home, *pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="where make run left the notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = parser.parse_args(argv)
    pages = build_site(args.build, args.out)
    print(f"{len(pages)} pages in {args.out}; open {pages[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
