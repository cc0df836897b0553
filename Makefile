# Two commands on a fresh clone (README): `make run` and `make test`. Each installs into .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.silnode-installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/silnode init
	$(VENV)/bin/silnode daemon start --foreground

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/gguf_header.py
	$(PY) bench/import_speed.py
	$(PY) bench/transfer.py
	$(PY) bench/identity_unlock.py
	$(PY) bench/estimate.py
	$(PY) bench/serve.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
