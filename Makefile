# Two commands do all the set-up: `make repro` (whole pipeline) and `make test` (test suite).
# Both create .venv if missing and reinstall only when a requirements file changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install repro test lint

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
