# Two commands do all the set-up on a fresh Debian machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: serve test test-embeddings lint typecheck bench bench-cold bench-peers bench-sandbox bench-gateway clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Debian packages lamina uses when present (bubblewrap for sandboxes); best effort,
# lamina runs without them and says which protections are off.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v bwrap >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || true; fi

serve: $(STAMP) system-deps
	$(BIN)/lamina serve $(ARGS)

test: $(TEST_STAMP) system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The local-embeddings provider's real-model tests (skipped by `make test`): torch 2.13.0 is
# the CPU wheel on this machine's disk (plain `torch` would be a multi-GB CUDA build).
test-embeddings: $(TEST_STAMP)
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[test,embeddings]'
	$(BIN)/pytest -q -m embeddings tests/integration/gateway/test_gateway_local_embeddings.py

bench: $(TEST_STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/invoke.py

bench-cold: $(TEST_STAMP)
	$(BIN)/python bench/cold_start.py all

bench-peers: $(TEST_STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	$(BIN)/python bench/peers.py all

bench-sandbox: $(TEST_STAMP)
	$(BIN)/python bench/sandbox.py

bench-gateway: $(TEST_STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	$(BIN)/python bench/gateway.py

clean:
	rm -rf $(VENV) build *.egg-info
