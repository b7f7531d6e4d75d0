# `make test` and `make demo` work on a fresh machine with only Python 3.11:
# they create .venv, install the pinned CPU torch first (an unpinned torch pulls a multi-GB CUDA
# build), then the package with its extras.
PYTHON ?= python3.11
VENV ?= .venv
TORCH_PIN ?= torch==2.13.0
EXTRAS ?= test
PYTEST_ARGS ?= -n 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: install test demo clean

$(BIN)/python:
	command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install "$(TORCH_PIN)"
	$(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m sciffusion.demo

clean:
	rm -rf $(VENV) demo_output
