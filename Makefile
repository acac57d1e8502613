# Two commands do everything on a fresh machine (see README.md):
#   make book   execute every notebook (PROFILE=quick) and build the Jupyter Book site
#   make test   lint, unit tests, every notebook executed in the smoke profile, book checks
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
STAMP := $(VENV)/.installed
# The JavaScript the site serves itself (MathJax, the ipywidgets manager), from npm, not a CDN.
VENDOR := book/_static/vendor/mathjax/tex-chtml.js

.PHONY: venv test book lab bench clean

# (Re)install when the venv is missing or requirements.txt / pyproject.toml changed.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

$(VENDOR): book/install_assets.sh
	book/install_assets.sh

# tests/test_book.py builds a book from the smoke executions in build/book-smoke and checks it,
# in a real browser too (headless Chromium; .ci/run installs it).
test: $(STAMP) $(VENDOR)
	$(BIN)/ruff check gantut tests notebooks
	GANTUT_PROFILE=smoke GANTUT_PROGRESS=0 MPLBACKEND=Agg $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-cell-timeout=300 -p no:cacheprovider

# Execute (cached) into book/notebooks/, then render those copies; a chapter of book/_toc.yml
# without its notebook fails the build.
book: $(STAMP) $(VENDOR)
	$(BIN)/python -m gantut.execute --profile $(PROFILE) --out book/notebooks
	@start=$$(date +%s); $(BIN)/jupyter-book build book && \
		echo "book rendered in $$(( $$(date +%s) - start )) s; site: $$(du -sh book/_build/html | cut -f1)"
	@echo "The book is at file://$(CURDIR)/book/_build/html/index.html"

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m gantut.bench

clean:
	rm -rf build book/_build book/notebooks book/_static/vendor
