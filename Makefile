# Two commands do all the set-up on a fresh Linux machine with Python 3.11:
#   make study   - create/reuse .venv, materialise the corpus (checked against data.dvc), dvc repro
#   make test    - create/reuse .venv, run the test suite (unit tests + the end-to-end smoke study)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.taste-installed

.PHONY: setup study test smoke bench sync-notebooks review clean-outputs

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.9.1 torchaudio==2.9.1
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e . --no-deps
	$(PY) -m ipykernel install --sys-prefix --name taste --display-name "Python (taste)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# Stage commands call `taste`, so the venv's bin comes first on PATH.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"

study: setup
	$(RUN) taste materialise
	$(RUN) dvc repro
	$(RUN) dvc metrics show

test: setup
	$(RUN) pytest

smoke: setup
	$(RUN) pytest tests/e2e -x

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

sync-notebooks: setup
	$(VENV)/bin/jupytext --to ipynb --update notebooks/*.py

review: setup
	$(RUN) taste review
