# Two commands for everyone: `make lab` (learners) and `make test` (everything).
# Each target installs what it needs into .venv on first use.
# Python 3.11-3.13 (torch 2.13 has wheels for these; 3.11 is the one tested)
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TEST_STAMP := $(subst .installed-,.installed-test-,$(STAMP))

.PHONY: install lab test doctor chromium sandbox hub release grade-demo grade-me bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' || \
	  { echo "error: $(PYTHON) is Python $$($(PYTHON) -V 2>&1): the course needs 3.11, 3.12 or 3.13 (make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and exactly pinned, on Linux from PyTorch's CPU index when it answers within 3 s
	# (tools/torch_index.py; BNCOURSE_TORCH_INDEX=cpu|default|<url> overrides); nothing later pulls another
	args="$$($(PY) tools/torch_index.py)" && $(PY) -m pip install --quiet $$args torch==2.13.0
	$(PY) -m pip install --quiet -e .
	rm -f $(VENV)/.installed-* && touch $@

# my_course/ topped up, then JupyterLab with the learner's settings for this launch only
# (bncourse/lab.py): no instructor tools. Plain `.venv/bin/jupyter lab` keeps the formgrader.
lab: $(STAMP)
	$(PY) -m bncourse.lab

# Pre-flight check before a workshop (bncourse/doctor.py): Python, torch (CPU-only), the data, a
# Jupyter kernel, one visible check, bubblewrap, disk. Installs nothing: says what to run instead.
doctor:
	@test -x $(PY) || { echo "✗ no course environment in $(VENV)/"; \
	  echo "    fix: run \`make install\` (or \`make lab\`) first: a few minutes, it downloads the packages"; exit 1; }
	@test -f $(STAMP) || echo "note: $(VENV) was installed for an older pyproject.toml: \`make install\` updates it"
	@$(PY) -m bncourse.doctor

test: $(TEST_STAMP) chromium sandbox hub slides-deps
	$(PY) -m pytest

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[browser,deploy,check,site]"
	touch $@

# Debian's Chromium drives tests/test_lab.py (JupyterLab in a real browser). Installed when
# this runs as root on Debian/Ubuntu; elsewhere those tests are skipped and say so.
chromium:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: /usr/bin/chromium not available: the browser tests will be skipped"

# Grading runs each submission inside bubblewrap (autograder/sandbox.py). Installed when this
# runs as root on Debian/Ubuntu; without it grading still works and says loudly that it ran
# unsandboxed, and the sandbox tests are skipped.
sandbox:
	@command -v bwrap >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  echo "note: bubblewrap (bwrap) not available: grading will run unsandboxed"

# The course on a real JupyterHub (deploy/hub/, tests/test_hub.py): jupyterhub (the `hub`
# extra) in .venv, configurable-http-proxy from npm installed locally into .hub/ (pinned in
# deploy/hub/package.json; no global install), and the learners' environment .venv-learner
# (same pins, only the bncourse package: deploy/hub/learner_env.py). Without npm the hub
# test is skipped and says so.
HUB_INPUTS := pyproject.toml deploy/hub/package.json deploy/hub/learner_env.py $(wildcard bncourse/learner_jupyter/*/*) $(wildcard bncourse/*.py) $(filter-out %/__pycache__,$(wildcard datasets/*))
HUB_STAMP  := .hub/.installed-$(shell cat $(HUB_INPUTS) | cksum | cut -d' ' -f1)

hub: $(HUB_STAMP)

$(HUB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[hub]"
	@if command -v npm >/dev/null; then \
	  mkdir -p .hub && cp deploy/hub/package.json .hub/package.json && \
	  npm install --prefix .hub --no-audit --no-fund --loglevel=error; \
	else echo "note: npm not available: configurable-http-proxy not installed, the hub test will be skipped"; fi
	$(PY) deploy/hub/learner_env.py .venv-learner
	mkdir -p .hub && rm -f .hub/.installed-* && touch $@

release: $(STAMP)
	$(PY) -m autograder release

# Slides of each lesson's Learn sections (tools/slides.py): the slide metadata set on solutions/ by
# rule, course/ regenerated, then reveal.js decks of course/ in build/slides/ (open
# build/slides/<lesson>.slides.html; the folder works offline, reveal.js beside the decks).
# reveal.js comes from npm, pinned in tools/reveal/package.json, installed locally into .slides/.
SLIDES_STAMP := .slides/.installed-$(shell cat tools/reveal/package.json | cksum | cut -d' ' -f1)
.PHONY: slides slides-deps
slides: $(STAMP) slides-deps
	$(PY) tools/slides.py --write
	$(PY) -m autograder release
	$(PY) tools/slides.py build build/slides

slides-deps: $(SLIDES_STAMP)

$(SLIDES_STAMP): tools/reveal/package.json
	@if command -v npm >/dev/null; then \
	  mkdir -p .slides && cp tools/reveal/package.json .slides/package.json && \
	  npm install --prefix .slides --no-audit --no-fund --loglevel=error && \
	  rm -f .slides/.installed-* && touch $@; \
	else echo "note: npm not available: reveal.js not installed, the slides' browser test will be skipped"; fi

# The student edition (tools/student_edition.py): what learners get and nothing of the grader's
# (course/, bncourse/ without its grading modules, data, a learner README, Makefile and pyproject,
# the licence), written to DEST outside this repository, to push as its own repository
.PHONY: student-edition
student-edition: $(STAMP)
	@test -n "$(DEST)" || { echo "usage: make student-edition DEST=/a/folder/outside/this/repository"; exit 1; }
	$(PY) tools/student_edition.py $(DEST)

# The course as a website, for reading before installing (tools/site/build.py): the student edition's
# lessons, the sheet, the notation and the guides of docs/, built with Sphinx + MyST-NB (the `site`
# extra) into build/site/ (SITE=... elsewhere), audited for leaks like the edition. Works offline.
SITE ?= build/site
SITE_STAMP := $(subst .installed-,.installed-site-,$(STAMP))
.PHONY: site
site: $(SITE_STAMP)
	$(PY) tools/site/build.py $(SITE)

$(SITE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[site]"
	touch $@

# The course's public address (pyproject.toml's [tool.bncourse] public-url) into README's Binder and
# Colab lines and every lesson's first code cell (tools/public_url.py), then course/ from solutions/.
# tests/test_binder.py fails while any of them shows another address.
.PHONY: public-url
public-url: $(STAMP)
	$(PY) tools/public_url.py --write
	$(PY) -m autograder release

# bncourse/stored_expected.npz: the visible checks' answers for the pieces torch has no layer for,
# from the hidden reference (tests/test_stored_expected.py fails when it is not current)
.PHONY: stored-expected
stored-expected: $(STAMP)
	$(PY) -m autograder.store_expected

# bncourse/probes.npz: the inputs that recognise each classic mistake and the mistake's answers
# to them, which bncourse.misconceptions compares with; written from the grading side
# (autograder/mistakes.py). tests/test_probe_data.py fails while it is stale.
.PHONY: probe-data
probe-data: $(STAMP)
	$(PY) -m autograder.mistakes

# deploy/k8s/ from autograder/k8s.py: the grading namespace, its deny-all NetworkPolicy, an
# example grading Job (the pod is the sandbox) and the formgrader service
.PHONY: k8s
k8s: $(STAMP)
	$(PY) -m autograder.k8s

# Every wheel the course installs, for this machine's platform and Python, in WHEELHOUSE
# (tools/wheelhouse.py; other platforms: its --platform). Installing from it needs no network:
# docs/workshop/offline.md
WHEELHOUSE ?= wheelhouse
.PHONY: wheelhouse
wheelhouse: $(STAMP)
	$(PY) tools/wheelhouse.py $(WHEELHOUSE)

grade-demo: $(STAMP) sandbox
	$(PY) -m autograder demo --workdir grading/demo

grade-me: $(STAMP) sandbox
	$(PY) -m autograder grade my_course --as-student me --workdir grading/me

bench: $(STAMP)
	$(PY) benchmarks/bench_lessons.py

clean-venv:
	rm -rf $(VENV) .venv-learner .hub
