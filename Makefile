# greenroom: `make run` serves the example app; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8866
APP ?= notebooks/guess

.PHONY: run test bench install install-test chromium clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(PY) -m pip install -q .

install-test: $(VENV)/bin/python
	$(PY) -m pip install -q ".[test]"

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

run: install
	$(VENV)/bin/greenroom serve $(APP) --port $(PORT) --ip 127.0.0.1 --no-browser

test: install-test chromium
	$(PY) -m pytest

bench: $(VENV)/bin/python
	$(PY) -m pip install -q ".[bench]"
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
