# Two commands do all the set-up: `make repro` (whole pipeline) and `make test` (test suite).
# Both create .venv if missing and reinstall only when a requirements file changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install repro test lint bench show plots plots-check

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

repro: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check aligntax stages tests bench

# The key view (<= 120 columns): each method's toxicity, faithfulness and deltas (metrics/summary.json),
# then the experiments table restricted to what changed, then every changed metric against HEAD.
# Run it beside a `dvc exp run -S ...`; docs/viewing.md explains the columns.
show: install
	$(BIN)/python -m aligntax.report.summary metrics/summary.json
	$(BIN)/dvc exp show --no-pager --only-changed --drop 'Created|.*\.(loss|ce|w)$$|.*\.pref\.'
	$(BIN)/dvc metrics diff --md

# Every plot of dvc.yaml in one page that needs no network (vega inlined in .dvc/plots/offline.html).
plots: install
	$(BIN)/dvc plots show --html-template .dvc/plots/offline.html -o dvc_plots

# Render that page in headless Chromium, fail if a plot is blank, save the screenshot docs/plots.png.
plots-check: plots
	$(BIN)/python bench/plots_check.py dvc_plots/index.html --screenshot docs/plots.png
