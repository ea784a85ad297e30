# Two commands on a fresh machine:  `make demo`  and  `make test`.
# TORCH_SPEC is installed FIRST so no other requirement can drag in a CUDA build:
#   here  : torch==2.13.0 (CPU wheel from the local wheel folder)
#   GPU   : make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP      := $(VENV)/.installed

.PHONY: install test test-fast demo stop bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

demo: install
	bash jobs/demo.sh

stop:
	bash jobs/demo.sh stop

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) .demo
