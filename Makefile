# The commands of the README. Each creates .venv and installs the project first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

$(BIN)/printstation: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/printstation

demo: install
	$(BIN)/printstation demo

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest
