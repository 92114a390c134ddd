# `make demo` and `make test` each create .venv when it is missing and install the project into it.
SHELL  := /bin/bash
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.salesfusion-installed
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: demo test lint bench readme clean

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install $(PIP_QUIET) -e ".[dev]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/salesfusion demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PYTHON) benchmarks/panel_build.py

readme: $(STAMP)
	$(VENV)/bin/salesfusion demo
	$(PYTHON) scripts/update_readme.py

clean:
	rm -rf $(VENV) runs .pytest_cache
