# Two commands for everyone: `make lab` (learners) and `make test` (everything).
# Each target installs what it needs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install lab test release grade-demo grade-me bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and exactly pinned: it resolves to a CPU wheel, and nothing later pulls another
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	rm -f $(VENV)/.installed-* && touch $@

lab: $(STAMP)
	$(PY) -m bncourse.workspace
	$(VENV)/bin/jupyter lab --notebook-dir=my_course

test: $(STAMP)
	$(PY) -m pytest

release: $(STAMP)
	$(PY) -m autograder release

grade-demo: $(STAMP)
	$(PY) -m autograder demo --workdir grading/demo

grade-me: $(STAMP)
	$(PY) -m autograder grade my_course --as-student me --workdir grading/me

bench: $(STAMP)
	$(PY) benchmarks/bench_lessons.py

clean-venv:
	rm -rf $(VENV)
