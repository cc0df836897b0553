# Two commands on a fresh clone (README): `make run` and `make test`. Each installs into .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.silnode-installed
# llama.cpp backend: auto (CUDA/ROCm only when a GPU *and* its toolkit are present, Metal on macOS, else a
# portable CPU build) or one of cpu, cuda, rocm, metal. scripts/install_llama.py is the one place that decides.
LLAMA_BACKEND ?= auto

.PHONY: install run test bench clean

$(STAMP): pyproject.toml scripts/install_llama.py
	@echo "[install] creating $(VENV) and installing silnode (the llama.cpp build prints its own progress)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) scripts/install_llama.py --python $(PY) --backend $(LLAMA_BACKEND)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/silnode init
	$(VENV)/bin/silnode daemon start --foreground

test: $(STAMP)
	$(VENV)/bin/ruff check silnode tests bench scripts
	$(VENV)/bin/ruff format --check silnode tests bench scripts
	$(VENV)/bin/mypy silnode/errors.py silnode/config.py silnode/client.py silnode/home.py \
	    silnode/serving/request.py silnode/manifest.py
	$(PY) -m pytest -q -rs

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/gguf_header.py
	$(PY) bench/import_speed.py
	$(PY) bench/transfer.py
	$(PY) bench/identity_unlock.py
	$(PY) bench/estimate.py
	$(PY) bench/serve.py
	$(PY) bench/payments.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
