# `make run` starts a demo hub; `make test` runs every check CI runs. Both set up .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint bench system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

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
