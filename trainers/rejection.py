"""Out-of-scope rejection: when the student answers the task's "none of these" outcome.

Torch-free (numpy only). A task with ``out_of_scope`` trains it as one more class (when it has
examples), and the calibrated confidence can reject too. Three rules, all on calibrated probabilities:

- ``class``: the most probable outcome, ``out_of_scope`` included (the explicit class; no threshold);
- ``confidence``: the most probable *in-scope* label, or ``out_of_scope`` when its probability is below
  the threshold (the ``out_of_scope`` column is ignored: its mass only lowers the others);
- ``both``: the most probable outcome, and an in-scope answer below the threshold becomes ``out_of_scope``.

The rule and its threshold are chosen on held-back (never test) by **macro-F1 over the in-scope labels
and out_of_scope**, each class that has held-back items counting once. Why this metric: it pays for
every way rejection goes wrong — false rejections lower the in-scope classes' recall, missed
out-of-scope items lower out_of_scope's recall, wrong rejections its precision — without a
hand-picked trade-off constant; and it is the number the run already decides its best round by.
Ties prefer the simpler rule: ``confidence``, then ``class``, then ``both`` (the issue's order: reject by
confidence, the explicit class only if it measures better; both only if it beats each alone), and the
lowest threshold (reject the least).

The reject label's name is stored with the rule (``trainers`` never imports ``generators``), so a saved
model and its ONNX folder answer ``out_of_scope`` by themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trainers.evaluate import macro_f1

MODES = ("confidence", "class", "both")  # tie order: the first that scores best wins
MAX_THRESHOLDS = 200  # candidate thresholds per rule; quantiles beyond that (a larger held-back split)
METRIC = "macro_f1 over in-scope labels + out_of_scope (held-back)"


@dataclass(frozen=True)
class Rejection:
    """The rule a model answers ``label`` by; ``scores`` is each rule's held-back metric at its best threshold."""

    label: str
    mode: str  # class | confidence | both
    threshold: float
    reason: str
    metric: str = METRIC
    scores: dict[str, float] = field(default_factory=dict)
    n: int = 0  # held-back items it was chosen on
    n_out_of_scope: int = 0  # of which out of scope

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rejection:
        return cls(**data)


def decide(proba: np.ndarray, labels: list[str], rejection: Rejection | None) -> tuple[np.ndarray, np.ndarray]:
    """Column index of each row's answer and the answer's confidence.

    Plain argmax without a rule. A confidence rejection's confidence is ``1 − p`` (p: the top in-scope
    probability), the probability that the in-scope answer it declined would have been wrong.
    """
    proba = np.asarray(proba, dtype=np.float64)
    rows = np.arange(len(proba))
    if rejection is None or rejection.label not in labels:
        top = proba.argmax(axis=1)
        return top, proba[rows, top]
    reject_col = labels.index(rejection.label)
    in_scope = proba.copy()
    in_scope[:, reject_col] = -1.0
    top_in = in_scope.argmax(axis=1)
    p_in = proba[rows, top_in]
    chosen = top_in if rejection.mode == "confidence" else proba.argmax(axis=1)
    rejected = (chosen != reject_col) & (p_in < rejection.threshold)
    answer = np.where(rejected, reject_col, chosen)
    confidence = np.where(rejected, 1.0 - p_in, proba[rows, answer])
    return answer, confidence


def answers(proba: np.ndarray, labels: list[str], rejection: Rejection | None) -> list[tuple[str, float]]:
    """``(label, confidence)`` per row, as ``predict`` answers."""
    columns, confidence = decide(proba, labels, rejection)
    return [(labels[int(c)], float(p)) for c, p in zip(columns, confidence, strict=True)]


def choose_rejection(proba: np.ndarray, gold: list[int], labels: list[str], reject_label: str) -> Rejection:
    """The rule and threshold with the best held-back macro-F1 (see the module docstring)."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(gold, dtype=np.int64)
    if reject_label not in labels:
        raise ValueError(f"labels: no {reject_label!r} among the model's labels")
    reject_col = labels.index(reject_label)
    n_oos = int(np.sum(y_true == reject_col))
    if n_oos == 0 or n_oos == len(y_true):
        what = "no out-of-scope" if n_oos == 0 else "only out-of-scope"
        reason = f"{what} items in held-back: rejection cannot be measured; the explicit class only"
        return Rejection(reject_label, "class", 0.0, reason, n=len(y_true), n_out_of_scope=n_oos)
    best: dict[str, tuple[float, float]] = {}
    for mode in MODES:
        best[mode] = _best_threshold(proba, y_true, labels, Rejection(reject_label, mode, 0.0, ""))
    mode = max(MODES, key=lambda m: (best[m][0], -MODES.index(m)))
    score, threshold = best[mode]
    reason = f"best held-back macro-F1 ({score:.3f}) of " + ", ".join(f"{m} {best[m][0]:.3f}" for m in MODES)
    scores = {m: best[m][0] for m in MODES}
    return Rejection(reject_label, mode, threshold, reason, scores=scores, n=len(y_true), n_out_of_scope=n_oos)


def _best_threshold(proba: np.ndarray, y_true: np.ndarray, labels: list[str], rule: Rejection) -> tuple[float, float]:
    """(score, threshold) of ``rule``'s best threshold; the lowest among equal scores."""
    best = (-1.0, 0.0)
    for threshold in [0.0] if rule.mode == "class" else _candidates(proba, labels.index(rule.label)):
        trial = Rejection(rule.label, rule.mode, threshold, "")
        score = macro_f1(y_true, decide(proba, labels, trial)[0], len(labels))
        if score > best[0] + 1e-12:
            best = (score, threshold)
    return best


def _candidates(proba: np.ndarray, reject_col: int) -> list[float]:
    """0 (never reject) and the midpoints between consecutive distinct top in-scope probabilities.

    Midpoints, not the observed values: the cut then sits between two held-back items, not on one.
    """
    in_scope = np.delete(proba, reject_col, axis=1).max(axis=1)
    values = np.unique(in_scope)
    if len(values) > MAX_THRESHOLDS:
        values = np.unique(np.quantile(values, np.linspace(0, 1, MAX_THRESHOLDS)))
    return [0.0, *((values[:-1] + values[1:]) / 2).tolist(), float(values[-1]) + 1e-9]
