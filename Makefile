# guitarsep: the two commands are `make reproduce` and `make test` (see README.md).
PROFILE ?= default
VENV    ?= .venv
PY      := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
export MPLBACKEND := Agg

.PHONY: setup test reproduce notebooks figures clean help

help:
	@echo "make reproduce [PROFILE=default|smoke|paper]  set up, build corpus, train, evaluate, figures"
	@echo "make test                                      set up, then pytest"
	@echo "make figures [PROFILE=default]                 redraw figures from the committed scores.csv"

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q

reproduce: setup notebooks

# Every notebook in order via papermill; executed copies go to the git-ignored build/.
notebooks:
	@mkdir -p build/notebooks/$(PROFILE)
	@for nb in $(NOTEBOOKS); do \
	    echo "== $$nb (profile=$(PROFILE))"; \
	    $(VENV)/bin/papermill $$nb build/notebooks/$(PROFILE)/$$(basename $$nb) \
	        -p profile $(PROFILE) -k python3 --cwd notebooks --log-output --no-progress-bar \
	        || exit 1; \
	done

figures: setup
	$(PY) -m guitarsep figures --profile $(PROFILE)

clean:
	rm -rf build
