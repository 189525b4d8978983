# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# into it first. torch is installed on its own, before sentence-transformers, so pip takes the
# CPU build instead of pulling several GB of CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
EXTRAS ?= local-model,dev,redis,postgres
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: install demo test lint typecheck unit services notebooks bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/hybrid-memory demo

lint: install
	$(BIN)/ruff check langchain_hybrid_memory tests benchmarks scripts
	$(BIN)/ruff format --check langchain_hybrid_memory tests benchmarks scripts

typecheck: install
	$(BIN)/mypy

# The store tests need Redis and PostgreSQL: install, start and wait for them when needed.
services:
	scripts/ensure-services.sh

unit: install services
	$(BIN)/pytest

test: lint typecheck unit

# Re-execute the notebooks in place and save their outputs (committed, so GitHub shows results and
# plots; the tests check they are fresh). Offline, with fake models; notebook 03 uses Redis.
notebooks: install services
	$(BIN)/python scripts/run_notebooks.py

# Benchmarks rewrite docs/benchmarks/ and docs/benchmarks.md, and the README's headline table
# (the test suite runs only a tiny smoke of each script). About 20 minutes on 2 quiet cores.
bench: install services
	$(BIN)/python benchmarks/chat_loop.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/embedders.py
	$(BIN)/python benchmarks/agent_thread.py
	$(BIN)/python benchmarks/locomo_recall.py
	$(BIN)/python benchmarks/locomo_baselines.py
	$(BIN)/python benchmarks/knowledge_updates.py
	$(BIN)/python benchmarks/bytes_per_turn.py
	$(BIN)/python benchmarks/report.py

# The inspector's screenshots in docs/images/, taken by its browser test in headless Chromium.
screenshots: install
	HYBRID_MEMORY_SCREENSHOTS=docs/images $(BIN)/pytest tests/browser -q -k newcomer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
