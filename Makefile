# uploadsession — the two commands: `make run` and `make test`.
# Everything the project needs is installed here, into .venv/ and node_modules/.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
STAMP_CHECKOV := $(VENV)/checkov/.installed

.PHONY: run test lint bench fuzz load clean deps deps-run

# Running needs the runtime requirements, the tools' extra (requirements-tools.txt) and Azurite;
# testing adds the dev tools.
deps-run: $(STAMP_RUN) $(STAMP_NODE)
deps: $(STAMP_PY) $(STAMP_NODE) $(STAMP_CHECKOV)

$(STAMP_RUN): requirements.txt requirements-tools.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=...)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-tools.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(STAMP_PY): $(STAMP_RUN) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# checkov in a virtual environment of its own (infra/requirements-checkov.txt says why).
$(STAMP_CHECKOV): infra/requirements-checkov.txt
	test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## make run: Azurite + a dev tenant + the app on http://localhost:7071, with a dev token printed
run: deps-run
	@scripts/run-local.sh

## make test: the whole suite (the tests start and stop Azurite themselves)
test: deps lint
	$(BIN)/python -m pytest

## make bench: the benchmark suite (not part of make test): tables on stdout, then
## bench/results/latest.{json,md,png}. One benchmark: make bench BENCH_ARGS="--only get_http"
bench: deps
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.report $(if $(findstring --quick,$(BENCH_ARGS)),--input bench/results/quick/latest.json)

## make fuzz: Schemathesis against `uploadsession serve` + Azurite, FUZZ_SCALE times the
## examples of make test (about 1,200 requests per unit of scale)
FUZZ_SCALE ?= 10
fuzz: deps
	FUZZ_SCALE=$(FUZZ_SCALE) $(BIN)/python -m pytest tests/reliability/test_fuzz.py -s \
		-p no:cacheprovider --timeout=3600

## make load: 32 clients for LOAD_SECONDS against `uploadsession serve` + Azurite, then an
## audit of every session; prints throughput and p99
LOAD_SECONDS ?= 60
load: deps
	LOAD_SECONDS=$(LOAD_SECONDS) $(BIN)/python -m pytest tests/reliability/test_load.py -s \
		-p no:cacheprovider --timeout=3600

## make lint: ruff (lint + format) and strict mypy; part of make test
lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache
