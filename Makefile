# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv on first use; it is re-installed only when pyproject.toml
# is newer than the stamp file.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium
PROMTOOL ?= /usr/bin/promtool

.PHONY: venv test demo browser promtool awscli bench bench-scale lint

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# The real AWS CLI (v1, from PyPI) for the command-line tests, in its own virtualenv: it pins an exact
# botocore, which must not move the app's in .venv. Re-installed only when the stamp is missing.
AWSCLI_VENV  := .venv-awscli
AWSCLI_STAMP := $(AWSCLI_VENV)/.installed
awscli: $(AWSCLI_STAMP)

$(AWSCLI_STAMP):
	test -x $(AWSCLI_VENV)/bin/python || $(PYTHON) -m venv $(AWSCLI_VENV)
	$(AWSCLI_VENV)/bin/python -m pip install --upgrade pip
	$(AWSCLI_VENV)/bin/python -m pip install awscli
	touch $(AWSCLI_STAMP)

# The browser test drives Debian's chromium (Playwright's own browser download is not used).
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make test: installing chromium for the browser test (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || exit 1; \
		fi; \
		if [ ! -x "$(CHROMIUM)" ]; then \
			echo "make test: the browser test needs chromium at $(CHROMIUM)." >&2; \
			echo "  Install it as root: apt-get update && apt-get install -y chromium" >&2; \
			echo "  (or set CHROMIUM=/path/to/chromium)" >&2; \
			exit 1; \
		fi; \
	fi

# The alert rules and a real scrape are checked with promtool, from Debian's prometheus package. Its
# post-install enables and starts the Prometheus server (on 0.0.0.0:9090): through systemd where it runs,
# else through invoke-rc.d, which starts nothing in a container (no runlevel) but does on a host booted
# with sysvinit. Both ask policy-rc.d first, so the install adds one denying every start for its own
# duration when there is none (Docker images ship the same), and skips the Recommends (node exporter).
promtool:
	@if [ ! -x "$(PROMTOOL)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make test: installing promtool for the alert-rule tests (apt-get prometheus; its server is not started)"; \
			policy=/usr/sbin/policy-rc.d; added=; \
			if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy && chmod +x $$policy && added=1; fi; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
			status=$$?; [ -z "$$added" ] || rm -f $$policy; [ $$status = 0 ] || exit 1; \
		fi; \
		if [ ! -x "$(PROMTOOL)" ]; then \
			echo "make test: the alert-rule tests need promtool at $(PROMTOOL)." >&2; \
			echo "  Install it as root: apt-get update && apt-get install -y --no-install-recommends prometheus" >&2; \
			echo "  (or set PROMTOOL=/path/to/promtool)" >&2; \
			exit 1; \
		fi; \
	fi

# The house's rules: the layers and other import contracts (.importlinter; docs/architecture.md), and
# no imports inside functions in akeru/ (ruff PLC0415; apps.py and checks.py excepted).
lint: venv
	$(BIN)/lint-imports
	$(BIN)/ruff check akeru

# 1. The whole suite on SQLite.
# 2. The `concurrency` and `postgres` tests again on a PostgreSQL server that the test
#    session starts itself (tests/settings.py).
test: venv awscli browser promtool lint
	AKERU_CHROMIUM=$(CHROMIUM) AKERU_PROMTOOL=$(PROMTOOL) AKERU_AWSCLI=$(CURDIR)/$(AWSCLI_VENV)/bin/aws $(BIN)/pytest --ds=tests.settings
	AKERU_TEST_DB=postgres $(BIN)/pytest --ds=tests.settings -m "concurrency or postgres"

demo: venv
	$(BIN)/python scripts/demo.py

# Benchmarks (not part of `make test`): Akeru through a 50 ms delaying proxy against 0.0.2's loop
# and under throttling; rewrites the generated part of docs/benchmarks.md. ~6 min on 2 cores.
BENCH_ARGS ?= --roles 1000 --legacy-roles 100 --throttle-roles 100
bench: venv
	$(BIN)/python bench/bench_latency.py $(BENCH_ARGS) --write-docs

# Proof at scale (not part of `make test`): 10,000 principals across 5 accounts on PostgreSQL with two
# worker processes, a Redis-protocol server and moto_server behind the 50 ms proxy; rewrites its section
# of docs/benchmarks.md. Runs for many minutes: smaller sizes with e.g.
# SCALE_ARGS="--principals 2000 --first 400 --grants 200 --intents 2000".
SCALE_ARGS ?=
bench-scale: venv
	$(BIN)/python bench/bench_scale.py $(SCALE_ARGS) --write-docs

# 100 AWS CLI commands in a row through `akeru creds` against static credentials (not part of `make test`):
# vends made and wall time; the AWS CLI from its own virtualenv (`make awscli`); rewrites its section of
# docs/benchmarks.md. ~1 min. Fewer with CLI_BENCH_ARGS="--commands 20".
CLI_BENCH_ARGS ?=
.PHONY: bench-cli
bench-cli: venv awscli
	$(BIN)/python bench/bench_cli.py $(CLI_BENCH_ARGS) --write-docs
