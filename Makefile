# firegrid — every target installs what it needs first (system packages, .venv, the package).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_BINARIES := /usr/sbin/mosquitto /usr/bin/influxd /usr/bin/chromium /usr/bin/mosquitto_sub
SYSTEM_PACKAGES := mosquitto mosquitto-clients influxdb chromium

.PHONY: setup system-packages test check bench demo soak screenshots clean

setup: system-packages $(STAMP)

# apt-get install fails on a fresh machine until the package lists exist: update and retry once.
# chromium is Debian's, for the console's browser tests (Playwright drives it; Playwright's own
# browser download is never used: it fetches a build of its own and fails here).
system-packages:
	@missing=""; for b in $(SYSTEM_BINARIES); do [ -x $$b ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(SYSTEM_PACKAGES) (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; }; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=20

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python -m bench

demo: setup
	$(BIN)/firegrid demo $(DEMO_ARGS)

# Long runs: the tests marked soak (`make test` deselects them): fuzzing with 100,000+ inputs
# each, the full compound fault run (InfluxDB down 2 minutes, two broker restarts, three kill -9)
# and the 30-minute soak at 2,000 msg/s (docs/RELIABILITY.md); then the outage, kill -9 and
# broker-restart tests, many times over.
SOAK_ROUNDS ?= 20
soak: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m soak -s --timeout 7200
	@for i in $$(seq 1 $(SOAK_ROUNDS)); do \
	  echo "soak round $$i/$(SOAK_ROUNDS)"; \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_faults.py tests/integration/test_alerts_e2e.py || exit 1; \
	done

# The pictures in README.md and docs/CONSOLE.md (docs/console/*.png, docs/report.png), taken again
# from real pages by the tests that take them; `make test` saves them in its temporary directories
# only, so that a test run leaves the tree clean.
screenshots: setup
	FIREGRID_REFRESH_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/integration/test_console.py tests/integration/test_report.py

clean:
	rm -rf $(VENV) .firegrid .demo build *.egg-info
