"""Serving a causal student over an OpenAI-compatible API: vLLM on a GPU, transformers otherwise.

vLLM is the engine for throughput (continuous batching, paged attention) but needs a CUDA GPU and pins its
own CUDA torch, so it is an optional extra in an environment of its own. Without it, distill serves the
model in-process with transformers (one generation at a time: fine for checks and light traffic) and says
what to install or run for more. The plan is decided here, torch-side; ``distill serve`` carries it out.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trainers.student import STUDENT_FILE, is_causal

VLLM_INSTALL = (
    "install vLLM in its own environment on a machine with a CUDA GPU (`pip install vllm`; it pins a CUDA "
    "torch, so not in distill's CPU environment) and run `vllm serve {model}`"
)
CPU_ALTERNATIVE = (
    "for CPU throughput, convert the folder with llama.cpp's convert_hf_to_gguf.py and serve the GGUF with "
    "`python -m llama_cpp.server --model model.gguf` (pip install 'distill-agent[llama]')"
)


class ServeError(ValueError):
    """The folder cannot be served as asked; the message says what to do instead."""


@dataclass(frozen=True)
class ServePlan:
    backend: Literal["vllm", "transformers"]
    command: list[str] | None  # the vLLM command line; None: serve in-process with transformers
    note: str  # why this backend, and what would serve faster


def check_model_dir(model_dir: Path) -> None:
    """A causal-LM Hugging Face folder (an encoder classifier is served by ``distill predict``)."""
    if (model_dir / STUDENT_FILE).is_file() and not is_causal(model_dir):
        raise ServeError(
            f"{model_dir} holds an encoder classifier, not a language model: classify with "
            f"`distill predict {model_dir}` or its ONNX export (`distill export-onnx`)"
        )
    if not (model_dir / "config.json").is_file():
        raise ServeError(f"{model_dir} is not a Hugging Face model folder (no config.json); give a causal student")


def plan(model_dir: Path, backend: str, *, host: str, port: int, name: str) -> ServePlan:
    """How to serve: ``backend`` is auto (vLLM when it can run here, else transformers), vllm or transformers."""
    check_model_dir(model_dir)
    have_vllm = importlib.util.find_spec("vllm") is not None and shutil.which("vllm") is not None
    have_gpu = _cuda_available()
    missing = [
        why for why, ok in (("vLLM is not installed", have_vllm), ("no CUDA GPU is visible", have_gpu)) if not ok
    ]
    if backend in ("auto", "vllm") and not missing:
        command = ["vllm", "serve", str(model_dir), "--host", host, "--port", str(port), "--served-model-name", name]
        return ServePlan("vllm", command, "vLLM on the GPU")
    if backend == "vllm":
        raise ServeError(f"cannot serve with vLLM: {' and '.join(missing)}; {VLLM_INSTALL.format(model=model_dir)}")
    note = f"transformers on {'the GPU' if have_gpu else 'the CPU'}, one request at a time"
    if missing:
        note += f" ({' and '.join(missing)}: {VLLM_INSTALL.format(model=model_dir)}; {CPU_ALTERNATIVE})"
    return ServePlan("transformers", None, note)


def serve_transformers(model_dir: Path, *, host: str, port: int, name: str) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (uvicorn handles both and returns)."""
    import uvicorn

    from trainers.llm_server import create_app
    from trainers.local_llm import LocalChatModel
    from trainers.loopback import uvicorn_config

    config = uvicorn_config(create_app(LocalChatModel(model_dir), name, None), library=False)
    config.host, config.port = host, port
    uvicorn.Server(config).run()


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
