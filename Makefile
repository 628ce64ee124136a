# Quick start: `make run` executes the notebooks, `make test` checks everything, `make lab` opens JupyterLab.
# Each target first makes .venv (once) and installs the course into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# exact versions the course was tested with, for the Python version they were tested on
CONSTRAINTS := constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: run test lab lint constraints site slides bench kaggle kaggle-wheels kaggle-weights clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@echo "compiling pymatting's numba kernels once (about a minute), so notebook 01 does not"
	$(BIN)/python -c "import pymatting"
	@touch $(STAMP)

## make run [NB=03] [FULL=1 | SMOKE=1]: execute notebooks into build/ and print their table
run: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py $(if $(NB),--nb $(NB)) $(if $(FULL),--full) $(if $(SMOKE),--smoke)

## make site: build/site/, a static HTML course site from the notebooks make run executed (offline)
site: $(STAMP)
	$(BIN)/python scripts/build_site.py

## make slides: build/slides/, reveal.js slides of every notebook, slide breaks from its headings (offline)
slides: $(STAMP)
	$(BIN)/python scripts/build_slides.py

## make test: ruff, unit tests, then every notebook in smoke mode under nbval
test: $(STAMP)
	$(BIN)/ruff check .
	COURSE_SMOKE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

## make bench: images/s of fit against hand-written loops, and each notebook's data against its model, on this
## device (GPU if there is one); writes benchmarks/training_<device>.md (CPU: about 20 minutes)
bench: $(STAMP)
	$(BIN)/python scripts/benchmark_training.py

## make lab: JupyterLab in the course environment
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,lab]"
	$(BIN)/jupyter lab notebooks

## make constraints: record the versions installed now as the tested set (for this Python version)
constraints: $(STAMP)
	$(BIN)/python scripts/freeze_constraints.py > $(CONSTRAINTS)

## make kaggle-wheels: dist/kaggle/ to upload as a Kaggle dataset, so notebooks install offline
kaggle-wheels: $(STAMP)
	rm -rf dist/kaggle
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist/kaggle .
	rm -rf build/lib build/bdist.*  # setuptools' scratch space, not make run's output
	$(BIN)/python -m pip download --quiet --no-deps -c $(CONSTRAINTS) -d dist/kaggle \
		segmentation-models-pytorch pooch kagglehub monai pymatting
	@ls dist/kaggle

## make kaggle [OWNER=you] [PUSH=1]: build/kaggle/, a folder per notebook for `kaggle kernels push` and the course
## kit (wheels + weights) for `kaggle datasets`; PUSH=1 uploads the kit and pushes the notebooks (needs credentials)
kaggle: kaggle-wheels
	$(if $(PUSH),$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[publish]")
	$(BIN)/python scripts/kaggle_publish.py $(if $(OWNER),--owner $(OWNER)) $(if $(PUSH),--push)

## make kaggle-weights: dist/kaggle-weights/ (needs Internet) to upload as a Kaggle dataset, for full mode offline
kaggle-weights: $(STAMP)
	$(BIN)/python scripts/fetch_weights.py dist/kaggle-weights

clean:
	rm -rf build dist .pytest_cache .ruff_cache
