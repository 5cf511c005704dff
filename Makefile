# waagent-doctor: one venv, every gate in `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE := examples/broken-vm

.PHONY: all venv host-deps lint typecheck unit compat test demo bench deb rpm clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# systemd-python needs libsystemd-dev + pkg-config + cc; optional, the journal falls back.
	-$(PY) -m pip install -q 'systemd-python>=235' 2>/dev/null
	touch $(STAMP)

venv: $(STAMP)

# Debian packages for the system tests and packages (installs them when root).
host-deps:
	@scripts/install-host-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks packaging
	$(VENV)/bin/ruff format --check src tests benchmarks packaging

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

# The oldest Python the packages promise (RHEL 9's python3): the host suite under 3.9 when
# this machine has one (pyenv or python3.9 on PATH); says so when it has not.
PY39 := $(shell for p in $(wildcard /root/.pyenv/versions/3.9*/bin/python) /usr/bin/python3.9 /usr/local/bin/python3.9; do \
	  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null && echo "$$p" && break; done)
compat:
ifeq ($(PY39),)
	@echo "compat: no Python 3.9 on this machine; 3.9 compatibility not tested (ruff target py39 only)"
else
	@test -x .venv39/bin/pytest || { $(PY39) -m venv .venv39 && .venv39/bin/pip install -q -e '.[dev]'; }
	.venv39/bin/pytest -q -p no:cacheprovider --ignore=tests/system --ignore=tests/packaging
endif

# The README's test command: every quality gate.
test: host-deps
	$(MAKE) lint typecheck deb rpm unit compat

# The README's main job: diagnose the embedded broken VM tree.
demo: $(STAMP)
	@$(VENV)/bin/waagent-doctor check --root $(SAMPLE); echo "(waagent-doctor check exited with status $$?: 0 ok, 1 warning, 2 critical)"

# The packages, into dist/ (packaging/build.py: wheels from PyPI at build time, for amd64 and
# arm64; ARCH=amd64 for one). The unit tests (tests/packaging) install and check them.
ARCH ?= amd64,arm64
deb: $(STAMP)
	$(PY) packaging/build.py deb --arch $(ARCH)

rpm: $(STAMP)
	$(PY) packaging/build.py rpm --arch $(ARCH)

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .venv39 dist build .mypy_cache .pytest_cache .ruff_cache
