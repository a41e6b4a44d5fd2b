# Two entry points: `make lab` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: lab test venv dev-venv chromium bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The lab gets uvloop (the `speed` extra), the embedded server's fast event loop. The test run does not, so
# CI proves the server on the standard library alone, as a plain `pip install` leaves it.
$(VENV)/.lab-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[speed]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.lab-installed
dev-venv: $(VENV)/.dev-installed

# Debian's chromium drives the browser tests; Playwright is pointed at it, never downloads its own.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

lab: venv
	$(BIN)/pynats-lab lab

test: dev-venv chromium
	$(BIN)/python -m pytest

bench: dev-venv venv
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
