"""The decision step: stop, or how many examples of each class to ask for next round.

A pure function of measured numbers, so it is unit-tested without models or a teacher.

Quotas follow DDK's smooth re-allocation (DESIGN §3): classes with higher validation error get more of
the budget, weight_c ∝ exp(error_c / mean error), mixed with the uniform share,
w = α·normalised + (1 − α)/N, so no class starves, then averaged with last round's weights so quotas
do not jump from one round to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolicyInput:
    round: int
    max_rounds: int
    heldback_macro_f1: list[float]  # one per finished round, round 0 first
    patience: int
    per_class_error: dict[str, float]  # 1 − F1 per class, on the feedback split
    round_size: int
    target_macro_f1: float | None = None
    alpha: float = 0.5
    previous_weights: dict[str, float] | None = None
    budget_stop: str | None = None  # set by the caller when a budget is spent or would be crossed
    smoothing: bool = True  # False: raw error-proportional quotas (the "PGKD without smoothing" ablation)


@dataclass(frozen=True)
class Decision:
    stop: bool
    reasons: list[str]
    best_round: int
    weights: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "stop" if self.stop else "continue"


def best_round(scores: list[float]) -> int:
    """Index of the best held-back score; the earliest wins a tie (cheaper, no evidence it is worse)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def stop_reasons(state: PolicyInput) -> list[str]:
    """Every reason to stop that holds now (empty: continue)."""
    scores = state.heldback_macro_f1
    reasons: list[str] = []
    if state.budget_stop:
        reasons.append(state.budget_stop)
    if state.target_macro_f1 is not None and scores and scores[-1] >= state.target_macro_f1:
        reasons.append(f"target reached: held-back macro-F1 {scores[-1]:.3f} ≥ {state.target_macro_f1:.3f}")
    rounds_since_best = len(scores) - 1 - best_round(scores) if scores else 0
    if rounds_since_best >= state.patience:
        reasons.append(
            f"early stop: held-back macro-F1 has not improved for {rounds_since_best} round(s) "
            f"(patience {state.patience}; best {max(scores):.3f} in round {best_round(scores)})"
        )
    if state.round >= state.max_rounds:
        reasons.append(f"round cap reached ({state.max_rounds} generation rounds)")
    return reasons


def error_weights(per_class_error: dict[str, float], alpha: float) -> dict[str, float]:
    """α·softmax-like error weights + (1 − α)·uniform; every class keeps at least (1 − α)/N."""
    labels = sorted(per_class_error)
    n = len(labels)
    mean_error = sum(per_class_error.values()) / n
    if mean_error <= 0:
        return {label: 1.0 / n for label in labels}
    raw = {label: math.exp(per_class_error[label] / mean_error) for label in labels}
    total = sum(raw.values())
    return {label: alpha * raw[label] / total + (1 - alpha) / n for label in labels}


def smoothed_weights(state: PolicyInput) -> dict[str, float]:
    if not state.smoothing:
        errors = state.per_class_error
        total = sum(errors.values())
        n = len(errors)
        return {c: (e / total if total > 0 else 1.0 / n) for c, e in errors.items()}
    target = error_weights(state.per_class_error, state.alpha)
    previous = state.previous_weights
    if not previous or set(previous) != set(target):
        return target
    return {label: (target[label] + previous[label]) / 2 for label in target}


def allocate(weights: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder rounding: integer quotas that sum to ``total``, each ≥ ⌊w·total⌋."""
    exact = {label: w * total for label, w in weights.items()}
    quotas = {label: math.floor(v) for label, v in exact.items()}
    leftover = total - sum(quotas.values())
    by_remainder = sorted(exact, key=lambda label: (exact[label] - quotas[label], label), reverse=True)
    for label in by_remainder[:leftover]:
        quotas[label] += 1
    return quotas


def decide(state: PolicyInput) -> Decision:
    """Stop (with every reason that holds) or continue with next round's per-class quotas."""
    best = best_round(state.heldback_macro_f1) if state.heldback_macro_f1 else 0
    reasons = stop_reasons(state)
    if reasons:
        return Decision(stop=True, reasons=reasons, best_round=best)
    weights = smoothed_weights(state)
    quotas = allocate(weights, state.round_size)
    worst = sorted(state.per_class_error, key=lambda c: -state.per_class_error[c])[:3]
    why = [
        f"continue: held-back macro-F1 {state.heldback_macro_f1[-1]:.3f} (best {max(state.heldback_macro_f1):.3f}"
        f" in round {best})",
    ]
    if state.round_size:  # with no teacher-written examples (active learning only) there is nothing to allocate
        why.append(
            "most budget to the weakest classes: "
            + ", ".join(f"{c} (error {state.per_class_error[c]:.2f}, {quotas[c]} ex.)" for c in worst)
        )
    return Decision(stop=False, reasons=why, best_round=best, weights=weights, quotas=quotas)
