# `make run` starts a demo hub; `make test` runs every check CI runs. Both set up .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint lock screenshots bench system-deps clean

# Every package, direct and transitive, comes from requirements-dev.lock with its hashes checked; then the hub itself,
# editable, with nothing more resolved. The stamp follows the lock, so a refreshed lock reinstalls.
$(BIN)/.installed: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The only way versions move: resolve pyproject.toml's ranges again and rewrite both locks (runtime for the Dockerfile,
# dev for make run/test). `make lock ARGS=--upgrade` takes the newest releases; ARGS="--upgrade-package redis" one.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet $(ARGS)
lock: $(BIN)/.installed
	$(LOCK) --group pyproject.toml:build -o requirements.lock
	$(LOCK) --extra dev --group pyproject.toml:build --group pyproject.toml:lock -o requirements-dev.lock

# Servers the tests talk to for real, and valgrind (a test counts a routing decision's instructions). Installed from
# Debian only when missing and when we may (root + apt); otherwise the tests start their own from binaries on PATH
# or say what is missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v dovecot >/dev/null || missing="$$missing dovecot-imapd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v callgrind_control >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "note: not installed:$$missing (tests needing them will start their own or skip)"; fi; \
	fi

run: $(BIN)/.installed
	$(BIN)/hub demo

lint: $(BIN)/.installed
	$(BIN)/ruff check hub tests bench
	$(BIN)/mypy

test: $(BIN)/.installed system-deps lint
	$(BIN)/pytest -q

# Refreshes the pictures in docs/screenshots/ from the browser tests (a plain test run writes them to a scratch folder).
screenshots: $(BIN)/.installed
	HUB_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/e2e tests/channels/webchat/test_browser.py

# wrk is the load generator (Debian package); without it the benchmark uses its slower Python one and says so.
# valgrind counts a routing decision's instructions (bench.instructions); without it that part says it is skipped.
bench: $(BIN)/.installed
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else echo "note: wrk not installed; the benchmark uses its slower Python load generator"; fi; }
	@command -v valgrind >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; fi; }
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.routing $(ARGS)
	$(BIN)/python -m bench.instructions $(ARGS)
	$(BIN)/python -m bench.email_import $(ARGS)

clean:
	rm -rf $(VENV) hub-demo .pytest_cache .mypy_cache .ruff_cache
