# dualstream_geo: install, test, demo. Every target works from a fresh clone.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python >= 3.12: PATH first, then pyenv's installed versions (the pyenv shims refuse
# without PYENV_VERSION, so each candidate is asked to run, not just found).
find_python = for c in python3.13 python3.12 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	if $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then command -v $$c; exit 0; fi; done; exit 1

.PHONY: install test lint docs demo clean test-transformers-floor

$(STAMP): pyproject.toml
	@PYTHON=$$($(find_python)) || { echo "error: no Python >= 3.12 found on PATH or in pyenv (\$$PYENV_ROOT/versions); install one, e.g. 'pyenv install 3.12'" >&2; exit 1; }; \
	echo "using $$PYTHON ($$($$PYTHON --version))"; \
	[ -x $(PY) ] || $$PYTHON -m venv $(VENV); \
	$(PY) -m pip install -q --upgrade pip && \
	$(PY) -m pip install -q -e ".[dev]" && touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy dualstream_geo

# The documentation site (mkdocs.yml) into site/; any warning (a broken link or reference,
# a docstring griffe cannot read) fails the build. Not --quiet: mkdocs then stops counting
# warnings.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Notebooks run with a smaller budget (DUALSTREAM_NOTEBOOK_QUICK) and fail the suite on error;
# what they write (checkpoints, maps: about 650 MB) goes into one folder removed at the end.
test: lint docs
	out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	DUALSTREAM_NOTEBOOK_OUT="$$out" DUALSTREAM_NOTEBOOK_QUICK=1 HF_HUB_OFFLINE=1 \
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15 tests --nbmake notebooks

# The declared transformers floor (4.57, the original project's version): the model tests
# against it, installed beside the venv (needs the package index).
FLOOR := .transformers-floor
test-transformers-floor: $(STAMP)
	$(PY) -m pip install -q --target $(FLOOR) --no-deps "transformers==4.57.6" \
		"huggingface-hub>=0.34,<1.0" "tokenizers>=0.22,<=0.23"
	PYTHONPATH=$(FLOOR) HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -p no:cacheprovider \
		tests/test_model.py tests/test_original.py

demo: $(STAMP)
	$(VENV)/bin/dualstream-geo demo --out demo_output

clean:
	rm -rf $(VENV) demo_output $(FLOOR) site .cache/mkdocs-jupyter
