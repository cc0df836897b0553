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

# set up (home, identity), start the daemon, serve a model, print the URLs; Ctrl-C stops the node
run: $(STAMP)
	$(VENV)/bin/silnode up

test: $(STAMP)
	$(VENV)/bin/ruff check silnode tests bench scripts
	$(VENV)/bin/ruff format --check silnode tests bench scripts
	$(VENV)/bin/mypy silnode/errors.py silnode/config.py silnode/client.py silnode/home.py \
	    silnode/serving/request.py silnode/manifest.py
	$(PY) -m pytest -q -rs

# every figure in the README's bench section comes from here: each script runs its anchor in the same run and
# reports median and min-max of 5 runs (bench/netns.py needs root for its network namespaces)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/gguf_header.py
	$(PY) bench/import_speed.py --runs 5
	$(PY) bench/transfer.py --runs 5
	@if [ "$$(id -u)" = 0 ]; then $(PY) bench/netns.py --runs 5; \
	 else echo "bench/netns.py: not run (needs root for network namespaces and tc)"; fi
	$(PY) bench/identity_unlock.py
	$(PY) bench/estimate.py
	$(PY) bench/speed_estimate.py --runs 5
	$(PY) bench/serve.py --models large,gemma --repeat 5
	$(PY) bench/structured.py --model gemma --repeat 5 --max-tokens 64
	$(PY) bench/fuzz_api.py --json
	$(PY) bench/discovery.py
	$(PY) bench/payments.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
