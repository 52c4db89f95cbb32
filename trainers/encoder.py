"""The encoder student: a sentence encoder with mean pooling and a linear head, fine-tuned on CPU.

Small data is the normal case in distillation, and plain fine-tuning (a CLS pooler head from
scratch, one learning rate, a fixed number of epochs) loses to logistic regression on frozen
embeddings there. The recipe here (defaults measured by ``bench/student_recipe.py``):

1. **Mean pooling + L2 normalisation + linear head**, the geometry the sentence model was trained
   with, so the pre-trained features are useful from step 0.
2. **The head starts as a logistic regression** fitted on the frozen embeddings of the training
   set (LP-FT): fine-tuning begins at the frozen-embedding baseline instead of at chance, and the
   early gradients do not scramble the features to fit a random head.
3. **Head learning rate ≫ body learning rate**, label smoothing, and **a minimum number of
   optimisation steps**, so 5 examples per class still get enough updates while large sets are
   bounded by ``epochs``.

The settings are ``trainers.config.EncoderConfig`` (torch-free, so a spec can validate them without
loading torch). Everything else is a lean torch loop: dynamic padding with length-grouped batches (padding to a
fixed length is 4–5× slower on CPU), a seeded data order, and a warm start that continues from a
saved folder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainers.config import EncoderConfig
from trainers.data_parallel import DataParallel
from trainers.embeddings import (
    length_sorted_batches,
    load_encoder,
    load_tokenizer,
    mean_pool,
    pad_batch,
    pad_id,
    quiet_progress,
    resolve_base_model,
)
from trainers.export import layout, write_pipeline
from trainers.model_card import render_model_card
from trainers.rejection import Rejection, answers

Progress = Callable[[int, int], None]

STUDENT_FILE = "distill_student.json"
LABELS_FILE = "labels.json"
FORMAT = "distill-encoder-classifier"
FORMAT_VERSION = 2  # 2: the sentence-transformers layout (trainers/export.py); 1: flat encoder + head.safetensors


@dataclass(frozen=True)
class TrainStats:
    """What one call to ``train`` did."""

    steps: int
    epochs: float  # may be fractional: min_steps/max_steps decide, not whole passes
    seconds: float
    examples_per_s: float
    final_loss: float  # mean training loss over the last epoch's worth of steps


class MeanPoolClassifier(nn.Module):
    """encoder → mean pooling → L2 normalisation → linear head (logits)."""

    def __init__(self, encoder: Any, num_labels: int) -> None:  # encoder: a transformers PreTrainedModel
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.embed(input_ids, attention_mask))
        return logits


class EncoderClassifier:
    """A trainable, savable text classifier; ``labels`` fixes the column order of probabilities."""

    def __init__(
        self,
        labels: list[str],
        config: EncoderConfig,
        model: MeanPoolClassifier,
        tokenizer: Any,
        head_trained: bool = False,
        temperature: float = 1.0,
        rejection: Rejection | None = None,
    ) -> None:
        self.labels = list(labels)
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.head_trained = head_trained  # False: the next train() initialises the head first
        self.temperature = temperature  # logits / T before the softmax (trainers.calibration); 1.0 = none
        self.rejection = rejection  # when predict answers the out-of-scope outcome (trainers.rejection); None: argmax
        self._index = {label: i for i, label in enumerate(self.labels)}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, labels: list[str], config: EncoderConfig | None = None) -> EncoderClassifier:
        """A fresh student on the config's base model; the head is set up by the first ``train``."""
        config = config or EncoderConfig()
        _check_labels(labels)
        path = resolve_base_model(config.base_model)
        encoder = load_encoder(path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the random head is part of the seeded state
            model = MeanPoolClassifier(encoder, len(labels))
        return cls(labels, config, model, load_tokenizer(path))

    @classmethod
    def load(cls, directory: str | Path) -> EncoderClassifier:
        """Restore a folder written by ``save`` (any format version): same weights, labels, tokenizer, config."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta_path = directory / STUDENT_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} is not a distill encoder student (no {STUDENT_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        labels = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        config = EncoderConfig.from_dict(meta["config"])
        parts = layout(directory)
        model = MeanPoolClassifier(load_encoder(str(parts.encoder_dir)), len(labels))
        head = load_file(str(parts.head_file))
        model.head.load_state_dict({"weight": head[parts.head_keys[0]], "bias": head[parts.head_keys[1]]})
        temperature = float(meta.get("temperature", 1.0))  # folders from before calibration: none
        rejection = Rejection.from_dict(meta["rejection"]) if meta.get("rejection") else None
        tokenizer = load_tokenizer(str(parts.encoder_dir))
        return cls(labels, config, model, tokenizer, head_trained=True, temperature=temperature, rejection=rejection)

    def save(self, directory: str | Path, card: dict[str, Any] | None = None) -> Path:
        """Write a sentence-transformers folder (``trainers.export``) plus labels, full config and a model card."""
        from safetensors.torch import save_file

        directory = Path(directory)
        parts = write_pipeline(
            directory,
            hidden_size=int(self.model.head.in_features),
            labels=self.labels,
            max_length=self.config.max_length,
        )
        with quiet_progress():
            self.model.encoder.save_pretrained(str(parts.encoder_dir))
            self.tokenizer.save_pretrained(str(parts.encoder_dir))
        head = self.model.head
        weight_key, bias_key = parts.head_keys
        tensors = {weight_key: head.weight.detach().contiguous(), bias_key: head.bias.detach().contiguous()}
        save_file(tensors, str(parts.head_file))
        labels = json.dumps(self.labels, indent=1, ensure_ascii=False)
        (directory / LABELS_FILE).write_text(labels, encoding="utf-8")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pooling": "mean",
            "normalize": True,
            "temperature": self.temperature,
            "rejection": self.rejection.to_dict() if self.rejection else None,
            "config": self.config.model_dump(mode="json"),
            "card": card or {},
        }
        write_student_meta(directory, meta)
        readme = render_model_card(card or {}, labels=self.labels, config=self.config.model_dump(mode="json"))
        (directory / "README.md").write_text(readme, encoding="utf-8")
        return directory

    # -- training -----------------------------------------------------------------------------

    def train(self, texts: list[str], labels: list[str], *, progress: Progress | None = None) -> TrainStats:
        """Fine-tune on ``texts``/``labels`` (continuing from the current weights); deterministic per seed."""
        targets = self._targets(texts, labels)
        ids = self._tokenize(texts)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if not self.head_trained:
                self._init_head(ids, targets)
            total = cfg.total_steps(len(texts))
            started = time.perf_counter()
            losses, seen = self._optimise(ids, targets, total, progress)
        seconds = time.perf_counter() - started
        self.head_trained = True
        self.temperature = 1.0  # a temperature fitted to the old weights says nothing about the new ones
        self.rejection = None  # nor does a threshold chosen on their probabilities
        per_epoch = math.ceil(len(texts) / cfg.batch_size)
        return TrainStats(
            steps=total,
            epochs=seen / len(texts),
            seconds=seconds,
            examples_per_s=seen / max(seconds, 1e-9),
            final_loss=float(np.mean(losses[-per_epoch:])),
        )

    def _targets(self, texts: list[str], labels: list[str]) -> torch.Tensor:
        if len(texts) != len(labels):
            raise ValueError(f"texts and labels differ in length: {len(texts)} vs {len(labels)}")
        if not texts:
            raise ValueError("no training examples")
        unknown = sorted({label for label in labels if label not in self._index})
        if unknown:
            raise ValueError(f"labels not in the student's label set: {', '.join(unknown[:10])}")
        return torch.tensor([self._index[label] for label in labels], dtype=torch.long)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids without padding; each batch is padded to its own longest text (dynamic padding)."""
        return list(self.tokenizer(texts, truncation=True, max_length=self.config.max_length)["input_ids"])

    def _init_head(self, ids: list[list[int]], targets: torch.Tensor) -> None:
        """LP-FT: start the head as a logistic regression on the frozen embeddings (or keep it random)."""
        if self.config.head_init != "logistic" or len(set(targets.tolist())) < 2:
            return  # LR needs two classes; the random head then learns from scratch
        features = self._embed(ids)
        weight, bias = _logistic_head(features, targets.numpy(), len(self.labels), self.config.head_init_c)
        with torch.no_grad():
            self.model.head.weight.copy_(torch.from_numpy(weight))
            self.model.head.bias.copy_(torch.from_numpy(bias))

    def _optimise(
        self, ids: list[list[int]], targets: torch.Tensor, total: int, progress: Progress | None
    ) -> tuple[list[float], int]:
        """The training loop, top to bottom: batch, forward, loss, backward, step, schedule.

        Under ``accelerate launch`` with N processes (``trainers.data_parallel``) each process takes its
        slice of the same global batch and DDP averages the gradients; the loss is the slice's sum over
        the global batch size × N, so the averaged gradient is the global batch's mean, as in one process.
        Returns the loss of every step and the number of examples seen.
        """
        optimizer = self._optimizer()
        warmup = _warmup_linear(total, self.config.warmup_ratio)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup)  # stepped once per global batch
        parallel = DataParallel.from_environment()
        model: nn.Module = self.model
        if parallel is not None:
            model, optimizer = parallel.prepare(model, optimizer)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing, reduction="none")
        pad = pad_id(self.tokenizer)
        losses: list[float] = []
        seen = 0
        model.train()
        for step, batch in enumerate(self._batches(ids, total), start=1):
            if parallel is None:
                loss = loss_fn(model(*pad_batch([ids[i] for i in batch], pad)), targets[batch]).mean()
                loss.backward()
            else:
                mine, real = parallel.shard(batch)
                inputs = [t.to(parallel.device) for t in pad_batch([ids[i] for i in mine], pad)]
                per_example = loss_fn(model(*inputs), targets[mine].to(parallel.device))
                loss = per_example.sum() * (parallel.world / len(batch) if real else 0.0)
                parallel.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()) if parallel is None else parallel.mean(loss))
            seen += len(batch)
            if progress is not None and (parallel is None or parallel.is_main):
                progress(step, total)
        if parallel is not None:
            self.model = parallel.unwrap(model).to("cpu")  # saved and used for inference on the CPU, as always
            parallel.wait()
        self.model.eval()
        return losses, seen

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW with two learning rates: a fast head on top of a gently moved body."""
        body_decay: list[nn.Parameter] = []
        body_plain: list[nn.Parameter] = []
        for name, param in self.model.encoder.named_parameters():
            if self.config.freeze_embeddings and "word_embeddings" in name:
                param.requires_grad_(False)  # why: half the weights; few examples cannot move a vocabulary
                continue
            param.requires_grad_(True)
            (body_plain if param.ndim < 2 else body_decay).append(param)
        groups = [
            {"params": body_decay, "lr": self.config.lr, "weight_decay": self.config.weight_decay},
            {"params": body_plain, "lr": self.config.lr, "weight_decay": 0.0},
            {"params": list(self.model.head.parameters()), "lr": self.config.head_lr, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups)

    def _batches(self, ids: list[list[int]], total: int) -> Iterator[list[int]]:
        """``total`` batches from seeded epochs (length-grouped, then shuffled); an epoch may be cut short."""
        rng = np.random.default_rng(self.config.seed)
        size = self.config.batch_size
        produced = 0
        while True:
            for batch in _length_grouped_epoch([len(x) for x in ids], size, rng):
                yield batch
                produced += 1
                if produced == total:
                    return

    # -- inference ----------------------------------------------------------------------------

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Calibrated class probabilities, ``softmax(logits / temperature)``; columns in ``labels`` order."""
        from trainers.calibration import softmax

        if not texts:
            return np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        return softmax(self.predict_logits(texts, batch_size), self.temperature)

    def predict_logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The head's raw logits (no temperature), shape ``(len(texts), len(labels))``."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        ids = self._tokenize(texts)
        self.model.eval()
        with torch.inference_mode():
            for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                logits = self.model(*pad_batch([ids[i] for i in batch], pad_id(self.tokenizer)))
                out[batch] = logits.double().numpy()
        return out

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """The answer and its confidence, per text: the most probable label and its probability, or the
        out-of-scope outcome where the saved rejection rule says so (``trainers.rejection.decide``)."""
        return answers(self.predict_proba(texts), self.labels, self.rejection)

    def _embed(self, ids: list[list[int]], batch_size: int = 64) -> np.ndarray:
        """Frozen (eval-mode) normalised embeddings from the current body, for the LR head."""
        out = np.zeros((len(ids), int(self.model.head.in_features)), dtype=np.float32)
        self.model.eval()
        with torch.inference_mode():
            for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                padded = pad_batch([ids[i] for i in batch], pad_id(self.tokenizer))
                out[batch] = self.model.embed(*padded).numpy()
        return out


# -- helpers ------------------------------------------------------------------------------------


def read_student_meta(directory: Path) -> dict[str, Any]:
    """``distill_student.json``: format, full training config and the card as data."""
    meta: dict[str, Any] = json.loads((directory / STUDENT_FILE).read_text(encoding="utf-8"))
    return meta


def save_temperature(directory: Path, temperature: float) -> None:
    """Record a fitted temperature in a saved folder's ``distill_student.json`` (weights untouched)."""
    meta = read_student_meta(directory)
    meta["temperature"] = temperature
    write_student_meta(directory, meta)


def save_rejection(directory: Path, rejection: Rejection | None) -> None:
    """Record the out-of-scope rejection rule in a saved folder's ``distill_student.json`` (weights untouched)."""
    meta = read_student_meta(directory)
    meta["rejection"] = rejection.to_dict() if rejection else None
    write_student_meta(directory, meta)


def write_student_meta(directory: Path, meta: dict[str, Any]) -> None:
    text = json.dumps(meta, indent=1, ensure_ascii=False, default=str)
    (directory / STUDENT_FILE).write_text(text, encoding="utf-8")


def _check_labels(labels: list[str]) -> None:
    if len(labels) < 2:
        raise ValueError(f"labels: a classifier needs at least 2 labels, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError("labels: duplicate label names")


def _length_grouped_epoch(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch: shuffle, sort windows of 50 batches by length, cut into batches, shuffle the batches.

    Why: batches of similar lengths pad little (CPU time scales with the padded width), while the
    window keeps the order random enough for SGD.
    """
    order = rng.permutation(len(lengths)).tolist()
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _warmup_linear(total: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero."""
    warmup = max(1, int(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _logistic_head(
    features: np.ndarray, targets: np.ndarray, num_labels: int, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (num_labels × dim) and biases of a multinomial LR, laid out in the student's label order.

    Labels with no training example get zero weights and a bias below every seen class, so they
    start out improbable instead of uniform.
    """
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=2000).fit(features, targets)
    classes = [int(k) for k in lr.classes_]
    coef, intercept = lr.coef_, lr.intercept_
    if len(classes) == 2:  # sklearn keeps one row for two classes: split it symmetrically
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((num_labels, features.shape[1]), dtype=np.float32)
    bias = np.full(num_labels, float(intercept.min()) - 5.0, dtype=np.float32)
    weight[classes], bias[classes] = coef, intercept
    return weight, bias
