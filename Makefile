# The two commands: `make run` and `make test`. Both create .venv when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NOTELOOP_DB ?= $(CURDIR)/noteloop.db

.PHONY: run test install lint bench clean

# torch first, pinned: the CPU wheel lies on local disk; an unpinned torch pulled in by
# another package would fetch a multi-GB CUDA build instead.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/noteloop demo --sample-notes sample_notes
	$(VENV)/bin/streamlit run noteloop/app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check noteloop tests bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
