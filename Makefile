# make demo / make test do the whole set-up: Debian packages for R, a venv, the package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system demo test bench bench-quick lint clean

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

# R older than 4.5 needs the rpy2 3.5 line: constraints/r-before-4.5.txt.
$(STAMP): pyproject.toml constraints/r-before-4.5.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]" \
	    $$(Rscript -e 'if (getRversion() < "4.5") cat("-c constraints/r-before-4.5.txt")')
	@touch $(STAMP)

demo: setup
	$(PY) scripts/run_demo.py

test: setup
	$(PY) -m pytest

bench: setup
	bash benchmarks/run.sh

bench-quick: setup
	bash benchmarks/run.sh --quick

lint: setup
	$(VENV)/bin/ruff check lmermagic tests
	$(VENV)/bin/mypy lmermagic

clean:
	rm -rf $(VENV) build
