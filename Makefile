# The README's two commands: `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5050

.PHONY: install demo test lint format emulator runtime clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/sales-cdc demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

emulator: install
	$(BIN)/sales-cdc emulator --port $(PORT)

runtime: install
	$(BIN)/sales-cdc runtime

clean:
	rm -rf $(VENV) .demo build *.egg-info
