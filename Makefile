# The two commands of the README:
#   make demo   installs everything (Chromium included) and runs `lovitura demo`
#   make test   installs everything and runs the checks and the tests
# Both are safe to run again; installs are skipped when already done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: install demo test lint typecheck migrations-check pytest clean

install: $(STAMP) /usr/bin/chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium: Playwright's own browser download cannot work offline.
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi

demo: install
	$(BIN)/lovitura demo $(DEMO_ARGS)

test: install lint typecheck migrations-check pytest

PY_CODE := lovitura_crawl pipelines matching fixtures migrations tests bench

lint:
	$(BIN)/ruff format --check $(PY_CODE)
	$(BIN)/ruff check $(PY_CODE)

typecheck:
	$(BIN)/mypy lovitura_crawl pipelines matching fixtures

migrations-check:
	$(BIN)/python -m tests.migrations_check

pytest:
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) demo-out var
