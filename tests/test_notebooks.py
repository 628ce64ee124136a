"""Notebook hygiene. nbval executes the notebooks themselves (make test: pytest --nbval-lax)."""

import re

import nbformat
import pytest
from conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks_and_they_are_named_by_section():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in code_cells(nb):
        assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_standard_first_cells(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert re.search(r"[\u4e00-\u9fff]", title.source.splitlines()[0]), "the title gives the lecture's 中文 term"
    blob = f"{REPO_URL.removeprefix('https://github.com/')}/blob/main/notebooks/{path.name}"
    assert f"kaggle.com/kernels/welcome?src=https://github.com/{blob}" in title.source
    assert f"colab.research.google.com/github/{blob}" in title.source
    setup, imports = code_cells(nb)[:2]
    assert "nbval-skip" in setup.metadata.get("tags", []), "the install cell must not run under nbval"
    assert f'REPO_URL = "{REPO_URL}"' in setup.source
    assert "runtime.print_env()" in imports.source


def test_install_cell_is_identical_in_every_notebook():
    setups = {code_cells(nbformat.read(p, as_version=4))[0].source for p in NOTEBOOKS}
    assert len(setups) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_config_cell_and_learning_assert(path):
    nb = nbformat.read(path, as_version=4)
    sources = [c.source for c in code_cells(nb)]
    assert sum("runtime.config(" in s for s in sources) == 1, "one config cell"
    assert "runtime.report(" in sources[-1] and re.search(r"^assert ", sources[-1], re.M), \
        "the last code cell reports the headline and asserts learning"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_listed_in_readme(path):
    assert f"notebooks/{path.name}" in (ROOT / "README.md").read_text()
