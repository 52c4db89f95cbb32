"""The student's folder as a sentence-transformers model: one standard call loads it, no distill code.

The student (``trainers.encoder.MeanPoolClassifier``) is encoder → mean pooling → L2 normalisation →
linear head, which is exactly the sentence-transformers pipeline ``Transformer → Pooling(mean) →
Normalize → Dense(identity)``. So the folder is written in that layout and
``SentenceTransformer(folder).encode(texts)`` returns the head's **logits** (softmax them for
probabilities; columns in ``labels.json`` order)::

    model/
      modules.json, config_sentence_transformers.json (+ id2label, label2id)
      0_Transformer/   the encoder (save_pretrained) and tokenizer, sentence_bert_config.json
      1_Pooling/       mean pooling
      2_Normalize/     L2 normalisation
      3_Dense/         the head: linear, identity activation, safetensors
      labels.json, distill_student.json, README.md

Why this layout:

- The encoder sits in a subfolder, so there is no ``config.json`` at the top: ``transformers``'
  ``pipeline(model=folder)`` fails loudly instead of silently putting a random classification head
  on a bare encoder (no standard ``*ForSequenceClassification`` has mean pooling, so there is no
  way to make it load correctly without remote code).
- Logits, not probabilities: a Dense module with a softmax activation cannot be restored without a
  class argument, and logits keep the information (temperature, margins) a user may want.
- Module types and config keys are the classic ones (as in the packaged all-MiniLM-L6-v2), so the
  folder does not depend on the internal module paths of one sentence-transformers release; weights
  are safetensors only (no pickle) and nothing needs ``trust_remote_code``.

We write these few JSON files ourselves rather than import sentence-transformers: its import costs
seconds in every process that saves or loads a student (each round, ``distill predict``). The tests
load the folder with the real library, so the format is checked, not assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULES_FILE = "modules.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"
TRANSFORMER_DIR = "0_Transformer"
POOLING_DIR = "1_Pooling"
NORMALIZE_DIR = "2_Normalize"
DENSE_DIR = "3_Dense"
DENSE_WEIGHTS = "model.safetensors"

# (type, folder) in pipeline order; the classic names every sentence-transformers release resolves.
PIPELINE = [
    ("sentence_transformers.models.Transformer", TRANSFORMER_DIR),
    ("sentence_transformers.models.Pooling", POOLING_DIR),
    ("sentence_transformers.models.Normalize", NORMALIZE_DIR),
    ("sentence_transformers.models.Dense", DENSE_DIR),
]
IDENTITY = "torch.nn.modules.linear.Identity"


@dataclass(frozen=True)
class Layout:
    """Where the parts of a saved student live inside its folder."""

    encoder_dir: Path  # save_pretrained encoder + tokenizer
    head_file: Path  # safetensors with the head's weight and bias
    head_keys: tuple[str, str]  # (weight key, bias key) in head_file


def is_sentence_transformers_folder(directory: Path) -> bool:
    return (directory / MODULES_FILE).is_file()


def write_pipeline(directory: Path, *, hidden_size: int, labels: list[str], max_length: int) -> Layout:
    """Write the sentence-transformers configuration files; the caller saves encoder and head where told."""
    directory.mkdir(parents=True, exist_ok=True)
    modules = [{"idx": i, "name": str(i), "path": path, "type": kind} for i, (kind, path) in enumerate(PIPELINE)]
    _write_json(directory / MODULES_FILE, modules)
    _write_json(directory / ST_CONFIG_FILE, _st_config(labels))
    _write_json(directory / TRANSFORMER_DIR / "sentence_bert_config.json", {"max_seq_length": max_length})
    _write_json(directory / POOLING_DIR / "config.json", _pooling_config(hidden_size))
    _write_json(directory / NORMALIZE_DIR / "config.json", {})
    dense = {"in_features": hidden_size, "out_features": len(labels), "bias": True, "activation_function": IDENTITY}
    _write_json(directory / DENSE_DIR / "config.json", dense)
    return layout(directory)


def layout(directory: Path) -> Layout:
    """Where encoder and head are: the sentence-transformers layout, or the flat one of format 1."""
    if not is_sentence_transformers_folder(directory):
        return Layout(directory, directory / "head.safetensors", ("weight", "bias"))
    _check_pipeline(directory)
    return Layout(directory / TRANSFORMER_DIR, directory / DENSE_DIR / DENSE_WEIGHTS, ("linear.weight", "linear.bias"))


def _check_pipeline(directory: Path) -> None:
    """A folder we did not write may hold another pipeline: say so instead of loading it wrongly."""
    modules = json.loads((directory / MODULES_FILE).read_text(encoding="utf-8"))
    found = [(m.get("type", "").rsplit(".", 1)[-1], m.get("path")) for m in modules]
    expected = [(kind.rsplit(".", 1)[-1], path) for kind, path in PIPELINE]
    pooling = json.loads((directory / POOLING_DIR / "config.json").read_text(encoding="utf-8")) if found else {}
    mean = pooling.get("pooling_mode_mean_tokens") is True or pooling.get("pooling_mode") == "mean"
    dense = json.loads((directory / DENSE_DIR / "config.json").read_text(encoding="utf-8")) if found else {}
    if found != expected or not mean or dense.get("activation_function") != IDENTITY:
        raise ValueError(
            f"{directory}: not a distill student's pipeline (expected Transformer → Pooling(mean) → Normalize → "
            f"Dense(identity) in {', '.join(p for _, p in PIPELINE)}); load it with sentence-transformers instead"
        )


def _st_config(labels: list[str]) -> dict[str, Any]:
    """sentence-transformers' model config, plus the labels for readers that only open JSON."""
    return {
        "__version__": {"sentence_transformers": "2.0.0"},  # the oldest release that reads this layout's keys
        "prompts": {},
        "default_prompt_name": None,
        "similarity_fn_name": None,
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
        "output": "logits: softmax over the last axis gives probabilities in id2label order",
    }


def _pooling_config(hidden_size: int) -> dict[str, Any]:
    return {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
