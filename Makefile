# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all demo test check format bench clean help

help:
	@echo "make demo   run the demo on the embedded sandbox cluster"
	@echo "make test   run the unit and integration tests"
	@echo "make check  format check, lint and strict type check"
	@echo "make bench  run the benchmarks in bench/ (figures printed and written to bench/results/)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	@touch $@

demo: $(STAMP)
	bash examples/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format operator tests bench
	$(BIN)/ruff check --fix operator tests bench

bench: $(STAMP)
	@mkdir -p bench/results
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
