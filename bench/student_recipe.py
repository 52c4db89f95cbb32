"""Is the encoder student's recipe better than the simple baselines at every data size?

    python bench/student_recipe.py [--quick] --json bench/results/student_recipe.json

Four students, trained on the same per-class samples (same seeds) and scored on the full test split
(test macro-F1, computed by ``trainers.evaluate``):

- recipe      ``EncoderClassifier`` with its default ``EncoderConfig``: mean pooling + L2 norm + linear
              head initialised from LR on frozen embeddings, head LR ≫ body LR, label smoothing,
              a minimum number of steps (see trainers/encoder.py);
- plain_ft    what DESIGN §6 measured as "plain fine-tuning": AutoModelForSequenceClassification
              (CLS pooler, random head), one learning rate, fixed epochs (lr 1e-4 × 15 epochs at
              5/class, 5e-5 × 8 at 32/class, 5e-5 × 3 on full data), linear decay, batch 16;
- tfidf_lr    word 1–2-gram TF-IDF + logistic regression;
- embed_lr    logistic regression on frozen mean-pooled MiniLM embeddings;
- setfit      SetFit (Tunstall et al. 2022; ``pip install 'distill-agent[bench]'``), the few-shot classifier
              users reach for instead: contrastive fine-tuning of the same MiniLM body on sentence pairs
              (its defaults: 20 pair iterations per example, 1 epoch, batch 16; at most ``SETFIT_MAX_STEPS``
              steps so that the larger sizes stay within CPU reach), then a logistic-regression head.

``train_s`` is wall time of training only (for embed_lr: embedding the training texts + the fit);
test inference is excluded. The machine is shared, so seconds are indicative. Training texts equal
to a test text (case-folded) are removed first. Needs ../shared/data and the packaged MiniLM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from trainers.baselines import frozen_embedding_lr, tfidf_lr  # noqa: E402
from trainers.embeddings import SentenceEmbedder  # noqa: E402
from trainers.evaluate import evaluate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
METHODS = ("recipe", "plain_ft", "tfidf_lr", "embed_lr", "setfit")
FULL = "full"
# (dataset, size, seeds): size is examples per class, or FULL for the whole training split.
PLAN_FULL: list[tuple[str, str, list[int]]] = [
    ("banking77", "5", [0, 1]),
    ("banking77", "32", [0, 1]),
    ("trec", "5", [0, 1]),
    ("trec", FULL, [0]),
]
PLAN_QUICK: list[tuple[str, str, list[int]]] = [("banking77", "5", [0]), ("trec", "5", [0]), ("trec", "32", [0])]
# Plain fine-tuning as measured before the recipe existed: (lr, epochs) by size.
PLAIN_SETTINGS = {"5": (1e-4, 15), "32": (5e-5, 8), FULL: (5e-5, 3)}

SETFIT_MAX_STEPS = 1500
Rows = list[dict[str, str]]
Result = tuple[list[str], float]  # predicted test labels, training seconds
Runner = Callable[[Rows, list[str], list[str], int, str], Result]  # (train, test texts, labels, seed, size)


def read(path: Path) -> Rows:
    return [{"text": r["text"], "label": r["label"]} for r in map(json.loads, path.read_text().splitlines())]


def load_dataset(name: str, data: Path) -> tuple[Rows, Rows, list[str]]:
    """Train (without texts that also occur in test), test, and the sorted label set."""
    test = read(data / name / "test.jsonl")
    test_keys = {r["text"].lower().strip() for r in test}
    train = [r for r in read(data / name / "train.jsonl") if r["text"].lower().strip() not in test_keys]
    return train, test, sorted({r["label"] for r in train + test})


def sample(train: Rows, size: str, seed: int) -> Rows:
    """``size`` examples per label (or all), drawn with ``seed``, in a seeded order."""
    rng = random.Random(seed)
    if size == FULL:
        rows = list(train)
    else:
        rows = []
        for label in sorted({r["label"] for r in train}):
            items = [r for r in train if r["label"] == label]
            rng.shuffle(items)
            rows += items[: int(size)]
    rng.shuffle(rows)
    return rows


def macro_f1(gold: list[str], predicted: list[str], labels: list[str]) -> float:
    """Macro-F1 exactly as the agent computes it (trainers.evaluate), from hard predictions."""
    onehot = np.zeros((len(gold), len(labels)))
    onehot[np.arange(len(gold)), [labels.index(p) for p in predicted]] = 1.0
    return evaluate(gold, onehot, labels).macro_f1


# -- the four students: each returns (predicted test labels, training seconds) ----------------------


def run_recipe(train: Rows, test_texts: list[str], labels: list[str], seed: int, size: str) -> Result:
    from trainers.encoder import EncoderClassifier, EncoderConfig

    student = EncoderClassifier.create(labels, EncoderConfig(seed=seed))
    started = time.perf_counter()
    student.train([r["text"] for r in train], [r["label"] for r in train])
    seconds = time.perf_counter() - started
    return [label for label, _ in student.predict(test_texts)], seconds


def run_plain(train: Rows, test_texts: list[str], labels: list[str], seed: int, size: str) -> Result:
    """AutoModelForSequenceClassification, one learning rate, fixed epochs, dynamic padding."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from trainers.embeddings import default_base_model, load_tokenizer, pad_batch, pad_id

    lr, epochs = PLAIN_SETTINGS[size]
    path = default_base_model()
    tokenizer = load_tokenizer(path)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels), local_files_only=True)
    ids = tokenizer([r["text"] for r in train], truncation=True, max_length=64)["input_ids"]
    targets = torch.tensor([labels.index(r["label"]) for r in train])
    steps = epochs * math.ceil(len(train) / 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / steps))
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(train)).tolist()
        for start in range(0, len(order), 16):
            batch = order[start : start + 16]
            input_ids, mask = pad_batch([ids[i] for i in batch], pad_id(tokenizer))
            loss = torch.nn.functional.cross_entropy(
                model(input_ids=input_ids, attention_mask=mask).logits, targets[batch]
            )
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - started
    return [labels[i] for i in _plain_predict(model, tokenizer, test_texts)], seconds


def _plain_predict(model: Any, tokenizer: Any, texts: list[str]) -> list[int]:
    import torch

    from trainers.embeddings import length_sorted_batches, pad_batch, pad_id

    ids = tokenizer(texts, truncation=True, max_length=64)["input_ids"]
    out = np.zeros(len(texts), dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for batch in length_sorted_batches([len(x) for x in ids], 64):
            logits = model(*pad_batch([ids[i] for i in batch], pad_id(tokenizer))).logits
            out[batch] = logits.argmax(dim=-1).numpy()
    return out.tolist()


def run_setfit(train: Rows, test_texts: list[str], labels: list[str], seed: int, size: str) -> Result:
    """SetFit on the packaged MiniLM body, its default recipe, the same training rows and seed."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from trainers.embeddings import default_base_model

    model = SetFitModel.from_pretrained(default_base_model(), labels=labels)
    rows = Dataset.from_dict({"text": [r["text"] for r in train], "label": [labels.index(r["label"]) for r in train]})
    with tempfile.TemporaryDirectory(prefix="setfit-") as scratch:  # its checkpoints, never in the repo
        # SetFit draws 2 × num_iterations pairs per example; max_steps would *extend* a shorter epoch to it
        # (Trainer semantics), so it is passed only where one epoch is longer than the cap.
        one_epoch = math.ceil(len(train) * 2 * 20 / 16)
        cap = {"max_steps": SETFIT_MAX_STEPS} if one_epoch > SETFIT_MAX_STEPS else {}
        args = TrainingArguments(output_dir=scratch, batch_size=16, num_epochs=1, num_iterations=20, seed=seed, **cap)
        trainer = Trainer(model=model, args=args, train_dataset=rows)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return [str(label) for label in model.predict(test_texts, as_numpy=True)], seconds


def make_baselines(embed: Callable[[list[str]], np.ndarray]) -> dict[str, Runner]:
    def run_tfidf(train: Rows, test_texts: list[str], labels: list[str], seed: int, size: str) -> Result:
        started = time.perf_counter()
        predicted = tfidf_lr([r["text"] for r in train], [r["label"] for r in train], test_texts)
        return predicted, time.perf_counter() - started

    def run_embed(train: Rows, test_texts: list[str], labels: list[str], seed: int, size: str) -> Result:
        embed(test_texts)  # cached: test embedding is inference, not training time
        started = time.perf_counter()
        texts, gold = [r["text"] for r in train], [r["label"] for r in train]
        predicted = frozen_embedding_lr(texts, gold, test_texts, embed)
        return predicted, time.perf_counter() - started

    return {"tfidf_lr": run_tfidf, "embed_lr": run_embed}


def cached(embedder: SentenceEmbedder) -> Callable[[list[str]], np.ndarray]:
    """Embed each distinct text once (the test split is shared by every seed and method)."""
    memo: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            memo.update(zip(missing, embedder.encode(missing), strict=True))
        return np.stack([memo[t] for t in texts])

    return embed


# -- the benchmark --------------------------------------------------------------------------------


def run(plan: list[tuple[str, str, list[int]]], data: Path, methods: tuple[str, ...]) -> dict[str, Any]:
    runners: dict[str, Runner] = {
        "recipe": run_recipe,
        "plain_ft": run_plain,
        "setfit": run_setfit,
        **make_baselines(cached(SentenceEmbedder())),
    }
    results: dict[str, Any] = {}
    for dataset, size, seeds in plan:
        train_all, test, labels = load_dataset(dataset, data)
        gold, test_texts = [r["label"] for r in test], [r["text"] for r in test]
        cell: dict[str, Any] = {}
        for method in methods:
            scores, seconds = [], []
            for seed in seeds:
                train = sample(train_all, size, seed)
                predicted, train_s = runners[method](train, test_texts, labels, seed, size)
                scores.append(macro_f1(gold, predicted, labels))
                seconds.append(train_s)
                print(
                    f"{dataset} {size} {method} seed {seed}: macro-F1 {scores[-1]:.4f}, "
                    f"train {train_s:.1f}s ({len(train)} examples)",
                    flush=True,
                )
            cell[method] = summarise(scores, seconds, seeds, len(train))
        results.setdefault(dataset, {})[size] = cell
    return results


def summarise(scores: list[float], seconds: list[float], seeds: list[int], n_train: int) -> dict[str, Any]:
    return {
        "macro_f1_mean": statistics.fmean(scores),
        "macro_f1_sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "train_s": statistics.fmean(seconds),
        "macro_f1_runs": scores,
        "seeds": seeds,
        "n_train": n_train,
    }


def print_table(results: dict[str, Any], methods: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Student recipe: test macro-F1 (mean ± sd over seeds) and train seconds")
    for column in ("dataset", "size/class", "n_train", "seeds", *methods):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for dataset, sizes in results.items():
        for size, cell in sizes.items():
            first = cell[methods[0]]
            best = max(cell[m]["macro_f1_mean"] for m in methods)
            row = [_cell(cell[m], bold=cell[m]["macro_f1_mean"] == best) for m in methods]
            table.add_row(dataset, size, str(first["n_train"]), str(len(first["seeds"])), *row)
    Console(width=160).print(table)


def _cell(stats: dict[str, Any], bold: bool) -> str:
    text = f"{stats['macro_f1_mean']:.3f} ± {stats['macro_f1_sd']:.3f} ({stats['train_s']:.1f}s)"
    return f"[bold]{text}[/bold]" if bold else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, small sizes only (a few minutes)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with <dataset>/{train,test}.jsonl")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--sizes", help="comma-separated subset of the plan's sizes (e.g. 5), default all")
    parser.add_argument("--datasets", help="comma-separated subset of the plan's datasets (banking77, trec)")
    parser.add_argument("--seeds", help="comma-separated seeds for every cell, instead of the plan's (e.g. 0,1,2)")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"needs the datasets at {args.data} (--data)")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()  # plain_ft's "newly initialized classifier" warning is expected
    started = time.perf_counter()
    plan = PLAN_QUICK if args.quick else PLAN_FULL
    if args.sizes:
        plan = [entry for entry in plan if entry[1] in args.sizes.split(",")]
    if args.datasets:
        plan = [entry for entry in plan if entry[0] in args.datasets.split(",")]
    if args.seeds:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        plan = [(dataset, size, seeds) for dataset, size, _ in plan]
    results = run(plan, args.data, methods)
    print_table(results, methods)
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
