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

DEBIAN_PACKAGES ?= espeak-ng dataset-fashion-mnist ferret-datasets

.PHONY: install system-packages test demo clean

$(BIN)/python:
	command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install "$(TORCH_PIN)"
	$(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

# espeak-ng renders the spoken-digit set; the other two are real datasets. Installed where apt-get
# works (as root); elsewhere the tests that need them skip and say how to install them.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "optional system packages missing:$$missing (sudo apt-get install$$missing)"; fi

test: $(STAMP) system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) system-packages
	$(BIN)/python -m sciffusion.demo

clean:
	rm -rf $(VENV) demo_output
