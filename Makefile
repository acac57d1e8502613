# Two commands do everything on a fresh machine (see README.md):
#   make book   execute every notebook (PROFILE=quick) and build the Jupyter Book site
#   make test   lint, unit tests, every notebook executed in the smoke profile, book checks
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
STAMP := $(VENV)/.installed

.PHONY: venv test book lab bench clean

# (Re)install when the venv is missing or requirements.txt / pyproject.toml changed.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check gantut tests notebooks
	GANTUT_PROFILE=smoke GANTUT_PROGRESS=0 MPLBACKEND=Agg $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-cell-timeout=300 -p no:cacheprovider

book: $(STAMP)
	$(BIN)/python -m gantut.execute --profile $(PROFILE) --out book/notebooks
	$(BIN)/jupyter-book build book
	@echo "The book is at file://$(CURDIR)/book/_build/html/index.html"

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m gantut.bench

clean:
	rm -rf build book/_build book/notebooks
