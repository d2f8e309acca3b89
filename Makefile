# facedit — the two set-up commands are `make demo` and `make test`; both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DEMO_OUT ?= demo-output

.PHONY: demo test test-faults lint install install-dev browser bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed on its own first, pinned, so pip takes the local CPU build.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	# compile the CPU Poisson kernels once (numba caches them next to the code)
	$(PY) -c "from shared.blend import precompile_poisson; precompile_poisson()"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/facedit demo --out $(DEMO_OUT)

lint: install-dev
	$(VENV)/bin/ruff check .

# Chromium for the browser tests (tests/browser.py): Debian's package, never Playwright's download.
CHROMIUM ?= /usr/bin/chromium
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@test -x $(CHROMIUM) || $(APT) install -y chromium || \
	  { $(APT) update && $(APT) install -y chromium; }

# `pytest -q` collects tests/ whole, the fault suite (tests/integration/faults) included.
test: install-dev lint browser
	$(PY) -m pytest -q

# The fault suite alone (issue #14): its own Redis, PostgreSQL and SeaweedFS, stopped, flushed
# or cut off mid-batch under a running API and two workers (about 3 minutes on 2 cores).
test-faults: install-dev
	$(PY) -m pytest -q tests/integration/faults

bench: install-dev
	$(PY) -m bench.poisson
	$(PY) -m bench.models
	$(PY) -m bench.pipeline
	$(PY) -m bench.service
	$(PY) -m bench.sweep
	$(PY) -m bench.gallery
	$(PY) -m bench.detectors
	$(PY) -m bench.overlap
	$(PY) -m bench.work_per_edit

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
