# Two commands do everything on a fresh machine:
#   make run    install into .venv and start the dashboard
#   make test   install into .venv (and Chromium for the browser test) and run the tests
# and, for a deployment:
#   make serve       install and start the server as a deployment would (the Dockerfile runs the same command)
#   make image-test  build the Dockerfile's image with podman and run it: healthy, a run trained from the
#                    browser, kept across a restart, not root (not part of `make test`; needs root and podman)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 0.0.0.0
PORT   ?= 8501
# The server as a deployment runs it: headless, no usage statistics, no file watcher, and no error details in the
# browser (an uncaught exception shows a generic message; its traceback goes to the server's log). Runs go to the
# executor that ARCHS_EXECUTOR names (local worker processes by default); see docs/sharing.md.
# `make run` (a laptop) keeps Streamlit's default, full details in the page.
SERVE_FLAGS := --server.headless true --browser.gatherUsageStats false --server.fileWatcherType none \
               --client.showErrorDetails none
# make image-test: the image it builds and the base it builds it FROM (made with debootstrap when missing).
# IMAGE_CONTEXT=<folder> builds from another checkout (e.g. a worktree of HEAD); IMAGE_TEST_COLD=1 builds with
# --no-cache first; more settings at the top of deploy/image-test.sh.
IMAGE      ?= localhost/archs-lab:test
IMAGE_BASE ?= localhost/archs-base:bookworm

.PHONY: run serve test lint install install-test browser bench image-test

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/activate
	$(PY) -m pip install -q -r requirements.txt

# The test command's environment is kept in a cache folder named by the hash of the requirements files, and ./.venv
# links to it: a fresh clone (CI) with the same requirements starts at once instead of installing for 2-3 minutes,
# and a changed pin makes a new one (the three newest are kept). VENV_CACHE= (empty) installs into ./.venv itself,
# as does a checkout whose ./.venv is already a folder of its own.
VENV_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/archs-lab/venvs
REQ_HASH   := $(shell cat requirements.txt requirements-ray.txt requirements-test.txt | sha256sum | cut -c1-16)

install-test:
	@if [ -n "$(VENV_CACHE)" ] && { [ ! -e $(VENV) ] || [ -L $(VENV) ]; }; then \
	  cached="$(VENV_CACHE)/test-$(REQ_HASH)"; \
	  if [ ! -e "$$cached/.complete" ]; then \
	    echo "installing the test environment into $$cached"; rm -rf "$$cached"; mkdir -p "$(VENV_CACHE)"; \
	    $(PYTHON) -m venv "$$cached" && "$$cached/bin/python" -m pip install -q -r requirements-test.txt \
	      && touch "$$cached/.complete" || { rm -rf "$$cached"; exit 1; }; \
	    ls -dt "$(VENV_CACHE)"/test-* | tail -n +4 | xargs -r rm -rf; \
	  fi; \
	  ln -sfn "$$cached" $(VENV); \
	else \
	  [ -e $(VENV)/bin/activate ] || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install -q -r requirements-test.txt; \
	fi

# The browser test drives the system Chromium (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); \
	  else echo "chromium not found: the browser test will be skipped"; fi; }

# On a laptop the one user is the operator: the Train page may download MNIST and the like into ./data (where the
# machine reaches the internet). ARCHS_ALLOW_DOWNLOAD=0 make run turns that off; make serve leaves it off.
run: install
	ARCHS_ALLOW_DOWNLOAD=$${ARCHS_ALLOW_DOWNLOAD-1} $(VENV)/bin/streamlit run dashboard.py --browser.gatherUsageStats false

serve: install
	$(PY) -m streamlit run dashboard.py $(SERVE_FLAGS) --server.address $(HOST) --server.port $(PORT)

# The suite in two parts: most of it in TEST_WORKERS pytest-xdist processes, each taking the next test as it frees,
# except that a module marked `xdist_group` (one whose module fixture starts a server, a Ray cluster or a child
# process; tests/conftest.py marks every browser module) stays whole in one process, so that fixture is made once
# (`--dist loadgroup`); the browser modules, the longest, go first. Then, alone on the machine, the tests marked
# `alone` (pytest.ini: they time how long a bystander waits, which another process's load would distort), from the
# files that mark any (collecting the whole suite to select them took 7 s). Both
# parts print their slowest 15; the command fails if either does. TEST_WORKERS=0 runs the first part in this
# process too. Measured on 2 cores (CI on a fresh clone, cached venv; AMD EPYC, AVX2): 12.4-13.7 min in all on
# 2026-12-06 (six runs: 10.7-12.0 min, then 1.5-1.6 min alone), 16.3-19.0 min on the same kind of machine the
# day before; plus about 2 min where the venv is not cached yet. 31 min in one process.
TEST_WORKERS ?= 2
test: install-test browser lint
	@rc=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not alone" || rc=$$?; \
	$(PY) -m pytest -q -m alone $$(grep -l 'mark\.alone' tests/test_*.py) || rc=$$?; \
	exit $$rc

# Before the tests: the style (ruff.toml) and the one-way imports (.importlinter; a loop fails with its path).
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: install-test
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# The image, built here (offline: Debian base from debootstrap, wheels from this machine's pip) and run with podman.
image-test: install-test browser
	IMAGE=$(IMAGE) IMAGE_BASE=$(IMAGE_BASE) PY=$(PY) bash deploy/image-test.sh
