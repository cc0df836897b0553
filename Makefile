# Two commands on a fresh clone (README): `make run` and `make test`. Each installs into .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.silnode-installed
# llama.cpp backend: auto (CUDA/ROCm only when a GPU *and* its toolkit are present, Metal on macOS, else a
# portable CPU build) or one of cpu, cuda, rocm, metal. scripts/install_llama.py is the one place that decides.
LLAMA_BACKEND ?= auto

.PHONY: install run test bench clean demo

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

# every bench in one run, each with its anchor; the report (date, machine, load) lands in bench/results/latest.md
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/all.py

# three nodes on loopback (private DHT, one relay, a cashu mint when built): A publishes, B discovers, downloads
# from A and C and serves, C's customer buys a job from B; prints the story with timings, then tears it all down
demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
