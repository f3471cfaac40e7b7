# flightrec: `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format clean

$(STAMP): requirements.txt tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r tests/requirements.txt
	touch $(STAMP)

## run: set up, migrate, create the admin account, load demo data, serve on :8000
run: $(STAMP)
	$(PY) manage.py bootstrap
	$(PY) manage.py serve

## test: set up, then the whole suite (browser tests use /usr/bin/chromium)
test: $(STAMP)
	@command -v chromium >/dev/null || { echo "chromium is missing: apt-get install -y chromium (or run .ci/run)"; exit 1; }
	$(PY) -m ruff check .
	$(PY) -m pytest

## bench: the benchmark suite; prints a table and writes bench/results/latest.json
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
