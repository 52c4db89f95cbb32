"""Choosing a deferral threshold on held-back: answer only when the calibrated confidence is ≥ it.

Torch-free (numpy only). The threshold is chosen from the held-back split's calibrated confidences
and correctness, never from test. Coverage is the share of items answered (confidence ≥ threshold);
``accuracy_answered`` is the accuracy on those items.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_CURVE_POINTS = 50


@dataclass(frozen=True)
class Threshold:
    threshold: float
    coverage: float
    accuracy_answered: float
    n: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _points(confidences: Any, correct: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (ascending) with coverage and answered accuracy at each."""
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"confidences ({conf.size}) and correct ({ok.size}) differ in length")
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    # Answering the k most confident items: threshold conf[k-1], but only where it is distinct.
    cum = np.cumsum(ok)
    counts = np.arange(1, conf.size + 1)
    last_of_value = np.r_[conf[1:] != conf[:-1], True] if conf.size else np.zeros(0, dtype=bool)
    thresholds = conf[last_of_value][::-1]
    answered = counts[last_of_value][::-1]
    accuracy = (cum[last_of_value] / counts[last_of_value])[::-1]
    coverage = answered / conf.size if conf.size else answered.astype(np.float64)
    return thresholds, coverage, accuracy, answered


def choose_threshold(
    confidences: Any,
    correct: Any,
    *,
    target_accuracy: float | None = None,
    max_defer_rate: float | None = None,
) -> Threshold:
    """The threshold meeting ``target_accuracy`` with the most coverage, or deferring ≤ ``max_defer_rate``.

    With neither target: 0 (never defer). If no threshold reaches ``target_accuracy``, the one with the
    highest answered accuracy (most coverage among ties), and ``reason`` says the target was not reached.
    """
    if target_accuracy is not None and max_defer_rate is not None:
        raise ValueError("give target_accuracy or max_defer_rate, not both")
    thresholds, coverage, accuracy, _ = _points(confidences, correct)
    n = int(np.asarray(confidences).size)
    if n == 0:
        return Threshold(0.0, 0.0, 0.0, 0, "no held-back items: never defer")
    full_accuracy = float(accuracy[0])
    if target_accuracy is None and max_defer_rate is None:
        return Threshold(0.0, 1.0, full_accuracy, n, "no deploy target: never defer")
    if target_accuracy is not None:
        meets = np.flatnonzero(accuracy >= target_accuracy - 1e-12)
        if meets.size:
            k = int(meets[0])  # lowest threshold that meets it: most coverage
            reason = f"lowest threshold with held-back accuracy ≥ {target_accuracy:g}"
        else:
            best = accuracy.max()
            k = int(np.flatnonzero(accuracy >= best - 1e-12)[0])
            reason = (
                f"target accuracy {target_accuracy:g} not reached on held-back at any threshold; "
                f"highest accuracy {best:.4f}"
            )
    else:
        assert max_defer_rate is not None
        allowed = np.flatnonzero(coverage >= 1.0 - max_defer_rate - 1e-12)
        k = int(allowed[-1])  # highest threshold that still answers enough: defers at most that share
        reason = f"highest threshold deferring ≤ {max_defer_rate:g} of held-back"
    threshold = 0.0 if k == 0 else float(thresholds[k])
    return Threshold(threshold, float(coverage[k]), float(accuracy[k]), n, reason)


def coverage_curve(confidences: Any, correct: Any, max_points: int = MAX_CURVE_POINTS) -> list[dict[str, float]]:
    """(threshold, coverage, accuracy) at the distinct confidences, thinned to about ``max_points``."""
    thresholds, coverage, accuracy, _ = _points(confidences, correct)
    if thresholds.size == 0:
        return []
    keep = np.unique(np.linspace(0, thresholds.size - 1, min(max_points, thresholds.size)).round().astype(int))
    return [
        {"threshold": float(thresholds[i]), "coverage": float(coverage[i]), "accuracy": float(accuracy[i])}
        for i in keep
    ]


def measure(confidences: Any, correct: Any, threshold: float) -> dict[str, float]:
    """Coverage and answered accuracy of a given threshold on some split (e.g. test, for reporting)."""
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    answered = conf >= threshold
    n = int(conf.size)
    return {
        "n": n,
        "coverage": float(answered.mean()) if n else 0.0,
        "accuracy_answered": float(ok[answered].mean()) if answered.any() else 0.0,
    }


@dataclass(frozen=True)
class TeacherCost:
    """What the teacher charges to label one text, and how that was found out (shown beside every cost)."""

    usd_per_text: float
    source: str  # "measured" (the run's journal of paid label calls) or "estimated" (spec prices × prompt size)
    detail: str  # e.g. "$0.0123 over 40 paid label calls, 200 texts"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_curve(
    curve: list[dict[str, float]], cost: TeacherCost, teacher_accuracy: float | None = None
) -> list[dict[str, float]]:
    """The coverage curve with what a cascade costs and (when the teacher's accuracy is known) gets right.

    At a threshold the student answers ``coverage`` of the messages and the teacher the rest, so the
    teacher bill per 1,000 messages is ``(1 - coverage) × usd_per_text × 1000`` (the student's own
    compute is not counted). ``cascade_accuracy`` counts the teacher's answers at ``teacher_accuracy``:
    ``coverage × accuracy + (1 - coverage) × teacher_accuracy``; without a measured teacher accuracy it
    is left out rather than guessed.
    """
    rows = []
    for point in curve:
        row = {**point, "cost_per_1k": (1.0 - point["coverage"]) * cost.usd_per_text * 1000}
        if teacher_accuracy is not None:
            row["cascade_accuracy"] = (
                point["coverage"] * point["accuracy"] + (1.0 - point["coverage"]) * teacher_accuracy
            )
        rows.append(row)
    return rows


STUDENT_FILE = "distill_student.json"  # trainers.encoder.STUDENT_FILE (not imported: that module needs torch)
ONNX_CONFIG_FILE = "onnx_config.json"  # trainers.onnx_model.CONFIG_FILE
ONNX_CONFIG_KEY = "deferral_threshold"


def stored_threshold(directory: Path) -> float:
    """The deferral threshold saved with a model folder or its ONNX folder; 0 (never defer) if none.

    A model folder keeps it in ``distill_student.json`` (``deferral.threshold``); an ONNX folder in
    ``onnx_config.json`` (``deferral_threshold``), or else its parent model folder's. Folders from
    before deferral existed have none.
    """
    onnx_config = directory / ONNX_CONFIG_FILE
    if onnx_config.is_file():
        config = json.loads(onnx_config.read_text(encoding="utf-8"))
        if ONNX_CONFIG_KEY in config:
            return float(config[ONNX_CONFIG_KEY])
        directory = directory.parent
    meta_path = directory / STUDENT_FILE
    if not meta_path.is_file():
        return 0.0
    entry = json.loads(meta_path.read_text(encoding="utf-8")).get("deferral") or {}
    return float(entry.get("threshold", 0.0))
