# The README's two commands: `make test` and `make demo`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
DEMO_VENV := .venv-demo
PIP_FLAGS := --disable-pip-version-check --quiet
# pytest-xdist workers; `make test WORKERS=0` runs in one process
WORKERS ?= 2

.PHONY: test demo lint bench docs clean

# The pinned test environment; rebuilt when the pins or the package metadata change.
$(VENV)/.installed: requirements/test.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements/test.txt
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

# Every backend that is installed (numpy, array-api-strict, torch, jax, dask; cupy with a GPU).
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# The bare package with numpy only (no framework): `python -m arraypenalties demo`.
demo:
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install $(PIP_FLAGS) ".[numpy]"
	$(DEMO_VENV)/bin/python -m arraypenalties demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples conftest.py
	$(VENV)/bin/ruff format --check src tests benchmarks examples conftest.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

# Every benchmarks/bench_*.py script in turn; each prints its own table of ratios.
bench: $(VENV)/.installed
	for script in benchmarks/bench_*.py; do $(VENV)/bin/python $$script || exit 1; done

# The documentation site in site/, built strictly (a broken link or reference fails) with the
# pinned test environment (mkdocs-material, mkdocstrings and matplotlib are pinned there); the
# build draws the figures into docs/figures/ and runs examples/ into docs/examples.md.
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(DEMO_VENV) site docs/figures docs/examples.md build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
