# scopenet: two commands on a fresh machine.  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.scopenet-installed

.PHONY: demo test test-fast bench install clean help

help:
	@echo "make demo   - create .venv, install, run the demo, write demo-output/report.html"
	@echo "make test   - create .venv, install, run the test suite"
	@echo "make bench  - run the benchmarks (slow)"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# Prefer a CPU build of torch when the machine has no NVIDIA GPU (the CUDA build is ~5 GB).
	@if $(PY) -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install "torch>=2.3"; \
	elif ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then $(PIP) install torch==2.13.0; \
	else $(PIP) install "torch>=2.3" --index-url https://download.pytorch.org/whl/cpu; fi
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m scopenet.demo --out demo-output
	@echo "Open demo-output/report.html"

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser"

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) demo-output .pytest_cache build *.egg-info src/*.egg-info
