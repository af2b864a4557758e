# Two commands for a newcomer: `make reproduce` and `make test`. Everything else is optional.
# A fresh machine needs only Python 3.11 and pip: the virtual environment is made here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Resolved versions of every dependency: every install uses them as pip constraints.
LOCK   := requirements/lock.txt
# Stamps re-install when pyproject.toml or the lock changes.
BASE_STAMP := $(VENV)/.installed-base
DEV_STAMP  := $(VENV)/.installed-dev
LAB_STAMP  := $(VENV)/.installed-lab
BENCH_STAMP := $(VENV)/.installed-bench
NBVAL_SANITIZE := $(CURDIR)/tests/nbval_sanitize.cfg
# nbval executes the notebooks, which write the run they describe into their repository: it runs
# them in a copy of the files they read, so `make test` leaves the checkout as it was.
NBVAL_REPO := runs/nbval-repo
NBVAL_COPY := notebooks paper docs params README.md pyproject.toml
# A run folder for `make paper` and `make html` (default: the committed run in the repository).
RUN ?= .
ROWS ?= 4000000

.PHONY: reproduce test test-fast nbval full paper html lab bench lock tex install install-dev \
        install-lab help

help:
	@echo "make reproduce   run the whole study on the embedded synthetic sample (offline)"
	@echo "make test        run every test, including nbval over the committed notebooks"
	@echo "make test-fast   unit tests only (no end-to-end runs, no nbval): a couple of minutes"
	@echo "make full        run on the full Hub snapshot (needs HF access; see README)"
	@echo "make paper       build the manuscript PDF of a run (RUN=runs/full; default the repository)"
	@echo "make html        render a run's executed notebooks to RUN/html/ for reading"
	@echo "make lab         open the notebooks in JupyterLab (installs the [lab] extra)"
	@echo "make bench       scale benchmark (ROWS=$(ROWS) image rows) with the naive baseline"
	@echo "make lock        re-write $(LOCK) from the working environment"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "The study's lock (requirements/lock.txt) was resolved on Python 3.11, but $(PYTHON) is"; \
	  $(PYTHON) --version; echo "Run with a Python 3.11, e.g. make PYTHON=python3.11 …"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q -c $(LOCK) -e .
	@touch $@

$(DEV_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev]'
	@touch $@ $(BASE_STAMP)

$(LAB_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[lab]'
	@touch $@ $(BASE_STAMP)

# The benchmark's peers need polars, which the study itself never imports.
$(BENCH_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[bench]'
	@touch $@ $(BASE_STAMP)

install: $(BASE_STAMP)
install-dev: $(DEV_STAMP)
install-lab: $(LAB_STAMP)

# The resolved version of every dependency of the project and its dev and lab extras,
# transitively, as installed in the working environment. To move to newer versions: install
# without the constraints (`.venv/bin/pip install -U -e '.[dev,lab]'`), run `make test`, then this.
lock: | $(BIN)/python
	$(BIN)/python -c "from helpers import pipeline; print(pipeline.lock_text(), end='')" > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

# Runs notebooks 00..05 with papermill on the sample; writes data/, paper/ outputs, and the
# executed notebooks back into notebooks/ (deterministic: `git diff` stays empty).
reproduce: $(BASE_STAMP)
	$(BIN)/python -m helpers run

# Unit, planted-truth, real-data (skipped without ../shared/data) and nbval notebook tests.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest tests
	$(MAKE) --no-print-directory nbval

# Unit tests only (a couple of minutes): no whole-pipeline runs, no benchmark, no property-based
# tests, no real-data tests, no nbval.
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest tests -m "not slow and not realdata" -p no:cacheprovider

# nbval over the committed notebooks, executed in a copy of the repository (see NBVAL_REPO).
nbval: $(DEV_STAMP)
	rm -rf $(NBVAL_REPO) && mkdir -p $(NBVAL_REPO)
	cp -R $(wildcard $(NBVAL_COPY)) $(NBVAL_REPO)/
	HELPERS_REPO_ROOT=$(CURDIR)/$(NBVAL_REPO) $(BIN)/python -m pytest --nbval $(NBVAL_REPO)/notebooks \
	  --nbval-sanitize-with $(NBVAL_SANITIZE) -p no:cacheprovider

full: $(BASE_STAMP)
	$(BIN)/python -m helpers run -f params/full.yaml --out runs/full

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks

# latexmk and TeX: installed from Debian packages when running as root (CI), else explained.
tex:
	@command -v latexmk >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing TeX (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    latexmk texlive-latex-recommended texlive-fonts-recommended >/dev/null; \
	else \
	  echo "make paper needs latexmk and a TeX distribution, which are not installed. Install them:"; \
	  echo "  Debian/Ubuntu: sudo apt-get install latexmk texlive-latex-recommended texlive-fonts-recommended"; \
	  echo "  Fedora:        sudo dnf install latexmk texlive-scheme-medium"; \
	  echo "  macOS:         brew install --cask mactex-no-gui"; \
	  echo "  elsewhere:     TeX Live, https://tug.org/texlive/"; \
	  echo "then run make paper again."; \
	  exit 1; \
	fi

# The manuscript of a run: paper/main.tex is built beside the run's figures, tables and numbers.
paper: $(BASE_STAMP) tex
	@if [ ! -f $(RUN)/paper/numbers.tex ]; then \
	  if [ "$(RUN)" = "." ]; then $(BIN)/python -m helpers run; \
	  else echo "$(RUN)/paper/numbers.tex not found: run the study into $(RUN) first"; exit 1; fi; \
	fi
	@if [ "$(abspath $(RUN))" != "$(CURDIR)" ]; then cp paper/main.tex $(RUN)/paper/main.tex; fi
	cd $(RUN)/paper && latexmk -pdf -interaction=nonstopmode -halt-on-error main.tex
	@echo "manuscript: $(abspath $(RUN))/paper/main.pdf"

# The executed notebooks of a run as HTML, in RUN/html/.
html: $(BASE_STAMP)
	$(BIN)/jupyter nbconvert --to html --output-dir $(RUN)/html \
	  $(filter-out %.failed.ipynb %.running.ipynb,$(wildcard $(RUN)/notebooks/[0-9][0-9]_*.ipynb))

bench: $(BENCH_STAMP)
	$(BIN)/python -m helpers bench --rows $(ROWS) --baseline
