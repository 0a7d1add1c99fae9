# greenroom: `make run` serves the example app; `make test` checks and runs the whole suite.
# `make dev` is a contributor's editable install; `make lint` the static checks; `make bench` the benchmarks;
# `make hub` runs the course example as a class on a local JupyterHub.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8866
APP ?= notebooks/guess
# mypy sees the package as it is imported: greenroom = kernel_ext/, with widgets/ and server_ext/ inside.
TYPECHECK := build/typecheck

.PHONY: run test lint typecheck dev bench hub install install-test chromium proxy clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(PY) -m pip install -q ".[data,examples]"

install-test: $(VENV)/bin/python
	$(PY) -m pip install -q ".[test,lint,data,examples]"

# The two steps of Jupyter's extension template. An editable install cannot place the auto-enable file, and
# jupyter_server's `extension enable` refuses a module no config file names yet: its own API writes the entry
# (as `enable` would), then `enable` validates that the extension imports and loads.
dev: $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[test,lint,data,examples]" pre-commit
	$(PY) -c "from jupyter_server.extension.serverextension import toggle_server_extension_python as toggle; toggle('greenroom.server_ext', enabled=True, sys_prefix=True)"
	$(VENV)/bin/jupyter server extension enable --sys-prefix greenroom.server_ext
	$(VENV)/bin/pre-commit install

$(VENV)/bin/mypy: | $(VENV)/bin/python
	$(PY) -m pip install -q ".[test,lint,data,examples]"

lint: $(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MAKE) --no-print-directory typecheck

typecheck: $(VENV)/bin/mypy
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/greenroom
	ln -s $(CURDIR)/kernel_ext/*.py $(CURDIR)/kernel_ext/py.typed $(CURDIR)/widgets $(CURDIR)/server_ext $(TYPECHECK)/greenroom/
	set -o pipefail; cd $(TYPECHECK) && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -p greenroom \
		| sed -e 's#^greenroom/widgets/#widgets/#' -e 's#^greenroom/server_ext/#server_ext/#' -e 's#^greenroom/#kernel_ext/#'

# JupyterHub's Node proxy, for the hub tests (what every hub deployment runs).
proxy:
	@command -v configurable-http-proxy >/dev/null || ( \
		(command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)) \
		&& npm install -g -s configurable-http-proxy)

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

run: install
	$(VENV)/bin/greenroom serve $(APP) --port $(PORT) --ip 127.0.0.1 --no-browser

test: install-test lint chromium proxy
	$(PY) -m pytest

# The course example as a whole class on this machine: JupyterHub with the greenroom service (http://127.0.0.1:8000).
hub: $(VENV)/bin/python proxy
	$(PY) -m pip install -q ".[data,examples,hub]"
	cd notebooks/course && $(abspath $(VENV))/bin/jupyterhub -f jupyterhub_config.py

# Every row: the hub rows need JupyterHub and its proxy, the Dask rows distributed (in the bench extra).
bench: $(VENV)/bin/python proxy
	$(PY) -m pip install -q ".[bench,data,hub]"
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
