# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv on first use; it is re-installed only when pyproject.toml
# is newer than the stamp file.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# 1. The whole suite on SQLite.
# 2. The `concurrency` tests again on a PostgreSQL server that the test session starts
#    itself (tests/settings.py).
test: venv
	$(BIN)/pytest --ds=tests.settings
	AKERU_TEST_DB=postgres $(BIN)/pytest --ds=tests.settings -m concurrency

demo: venv
	$(BIN)/python scripts/demo.py
