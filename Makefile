# guitarsep: the two commands are `make reproduce` and `make test` (see README.md).
PROFILE ?= default
VENV    ?= .venv
PY      := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))
export MPLBACKEND := Agg

.PHONY: setup test reproduce notebooks figures lab clean help

help:
	@echo "make reproduce [PROFILE=default|smoke|paper]  set up, build corpus, train, evaluate, figures"
	@echo "make test                                      set up, then pytest"
	@echo "make figures [PROFILE=default]                 redraw figures from the committed scores.csv"
	@echo "make lab [LAB_PORT=8888]                       JupyterLab on notebooks/ (127.0.0.1; prints the URL)"

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q

reproduce: setup notebooks

# Every notebook in order via papermill; executed copies go to the git-ignored build/.
# glibc's allocator otherwise maps and unmaps each large tensor buffer anew (page faults:
# the modern U-Net's training step took 1.8 s, 0.9 s with these; scripts/bench_models.py).
# Arithmetic is unchanged, so the results are the same bytes.
MALLOC_ENV := MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647
notebooks:
	@mkdir -p build/notebooks/$(PROFILE)
	@for nb in $(NOTEBOOKS); do \
	    echo "== $$nb (profile=$(PROFILE))"; \
	    $(MALLOC_ENV) $(VENV)/bin/papermill $$nb build/notebooks/$(PROFILE)/$$(basename $$nb) \
	        -p profile $(PROFILE) -k python3 --cwd notebooks --log-output --no-progress-bar \
	        || exit 1; \
	done

figures: setup
	$(PY) -m guitarsep figures --profile $(PROFILE)

# JupyterLab on notebooks/, loopback only, with the venv registered as the kernel "guitarsep"
# (its kernelspec in the venv's prefix, not ~/.local; "Python 3" is the venv's Python too, what
# papermill's -k python3 runs). Jupyter prints the URL with its token. MPLBACKEND is unset so
# the kernels draw figures inline (the Agg exported above is for papermill and the CLI).
LAB_PORT ?= 8888
lab: setup
	@$(PY) -m ipykernel install --sys-prefix --name guitarsep \
	    --display-name "Python 3 (guitarsep)" >/dev/null
	@echo "lab: JupyterLab on notebooks/, kernel 'Python 3 (guitarsep)'; open the"
	@echo "lab: http://127.0.0.1:<port>/lab?token=... URL printed below (Ctrl-C twice stops it)"
	env -u MPLBACKEND $(VENV)/bin/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 \
	    --ServerApp.port=$(LAB_PORT) --ServerApp.root_dir=notebooks \
	    $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf build
