# Every target creates and fills the local virtual environment .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint horovod clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/toy_ffjord.py --out runs/toy_ffjord

# FFJORD_KIT_SLOW_TESTS=1: include the 2-rank train + kill + resume runs (both backends).
test: $(STAMP)
	$(PY) -m ruff check ffjord_kit scripts tests benchmarks
	FFJORD_KIT_SLOW_TESTS=1 $(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check ffjord_kit scripts tests benchmarks

horovod: $(STAMP)
	bash scripts/build_horovod.sh $(PY)

clean:
	rm -rf runs .pytest_cache
