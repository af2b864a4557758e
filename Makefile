# Two commands for a newcomer: `make reproduce` and `make test`. Everything else is optional.
# A fresh machine needs only Python 3.11 and pip: the virtual environment is made here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stamps re-install when pyproject.toml changes.
BASE_STAMP := $(VENV)/.installed-base
DEV_STAMP  := $(VENV)/.installed-dev
NBVAL_SANITIZE := tests/nbval_sanitize.cfg
ROWS ?= 4000000

.PHONY: reproduce test full paper html bench install install-dev clean-run help

help:
	@echo "make reproduce  run the whole study on the embedded synthetic sample (offline)"
	@echo "make test       run every test, including nbval over the committed notebooks"
	@echo "make full       run on the full Hub snapshot (needs HF access; see README)"
	@echo "make paper      build paper/main.pdf from the pipeline's figures, tables, numbers"
	@echo "make html       render the executed notebooks to html/ for reading"
	@echo "make bench      scale benchmark (ROWS=$(ROWS) image rows) with the naive baseline"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@ $(BASE_STAMP)

install: $(BASE_STAMP)
install-dev: $(DEV_STAMP)

# Runs notebooks 00..05 with papermill on the sample; writes data/, paper/ outputs, and the
# executed notebooks back into notebooks/ (deterministic: `git diff` stays empty).
reproduce: $(BASE_STAMP)
	$(BIN)/python -m helpers run

# Unit, planted-truth, real-data (skipped without ../shared/data) and nbval notebook tests.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with $(NBVAL_SANITIZE) -p no:cacheprovider

full: $(BASE_STAMP)
	$(BIN)/python -m helpers run -f params/full.yaml --out runs/full

paper: $(BASE_STAMP)
	@command -v latexmk >/dev/null || { echo "installing TeX (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  latexmk texlive-latex-recommended texlive-fonts-recommended >/dev/null; }
	@test -f paper/numbers.tex || $(BIN)/python -m helpers run
	cd paper && latexmk -pdf -interaction=nonstopmode -halt-on-error main.tex

html: $(BASE_STAMP)
	$(BIN)/jupyter nbconvert --to html --output-dir html notebooks/[0-9][0-9]_*.ipynb

bench: $(BASE_STAMP)
	$(BIN)/python -m helpers bench --rows $(ROWS) --baseline
