# make demo / make test do the whole set-up: Debian packages for R, a venv, the package.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite runs in this many pytest processes (pytest-xdist; each starts its own R): one per
# CPU, at most 4. `make test PYTEST_WORKERS=0` runs it in one process. A process that dies
# ends the run as a failure (--max-worker-restart=0): xdist's replacement worker can wait for
# ever on --dist loadfile.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$((n < 4 ? n : 4)))

DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: setup system demo test docs docs-test matrix bench bench-quick bench-many bench-power lint clean

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

# The suite's log and this stack's record go beside the matrix's (build/compat/host.*).
# --dist loadfile: a test file's tests stay in one process (module fixtures made once).
test: setup
	@mkdir -p build/compat
	set -o pipefail; $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --max-worker-restart=0 2>&1 \
	    | tee build/compat/host.log
	@$(PY) scripts/compat/record.py --suite host --line 3.5 --venv "$$(cd $(VENV) && pwd)" \
	    --out build/compat/host --install-rc 0 --test-rc 0 \
	    --install-seconds 0 --test-seconds 0

# The documentation site, into build/site, from the executed notebooks `make demo` writes
# (`make docs EXECUTE=1` runs the notebooks that have no executed copy newer than their
# source). Any warning fails the build.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[docs,test]" \
	    $$(Rscript -e 'if (getRversion() < "4.5") cat("-c constraints/r-before-4.5.txt")')
	@touch $(DOCS_STAMP)

docs: setup $(DOCS_STAMP)
	$(PY) scripts/build_docs.py $(if $(EXECUTE),--execute)

# The site in headless Chromium: every page, link and image, search, screenshots
# (build/site-*.png). Runs the notebooks that have no executed copy first.
docs-test: setup $(DOCS_STAMP)
	$(PY) scripts/build_docs.py --execute
	$(PY) -m pytest -p no:cacheprovider docs/site

# The suite on Debian 13 and unstable (debootstrap roots, as root), both rpy2 lines.
matrix:
	bash scripts/compat/matrix.sh

bench: setup
	bash benchmarks/run.sh

bench-quick: setup
	bash benchmarks/run.sh --quick

# the many-models section alone (issue 11); needs the data and peers' venv of a bench run
bench-many: setup
	$(PY) benchmarks/many.py

# the power-by-simulation section alone (issue 20)
bench-power: setup
	$(PY) benchmarks/power.py

lint: setup
	$(VENV)/bin/ruff check lmermagic tests scripts docs/site benchmarks
	$(VENV)/bin/mypy lmermagic

clean:
	rm -rf $(VENV) build
