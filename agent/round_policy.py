"""The decision step: stop, or how many examples of each class to ask for next round.

A pure function of measured numbers, so it is unit-tested without models or a teacher.

Quotas follow DDK's smooth re-allocation (DESIGN §3): classes with higher validation error get more of
the budget, weight_c ∝ exp(error_c / mean error), mixed with the uniform share,
w = α·normalised + (1 − α)/N, so no class starves, then averaged with last round's weights so quotas
do not jump from one round to the next.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any


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


# -- splitting a round's teacher budget between generation and active labeling ------------------------

SPLIT_FLOOR = 0.2  # each source keeps at least this share of the spend, so it keeps being measured


@dataclass(frozen=True)
class SourceGain:
    """What one data source bought in the round just measured.

    ``gain``: held-back macro-F1 of a frozen-embedding LR on the kept data from before the round plus
    this source's new kept examples, minus the same LR without them. ``cost``: the source's teacher
    cost in the round (USD, or tokens when prices are 0). ``units``: examples asked for / texts sent.
    """

    gain: float
    cost: float
    units: int

    @property
    def unit_cost(self) -> float:
        return self.cost / self.units

    @property
    def gain_per_cost(self) -> float:
        return self.gain / self.cost


@dataclass(frozen=True)
class SplitInput:
    configured_generation: int  # loop.examples_per_round
    configured_labeling: int  # loop.active_per_round
    generation: SourceGain | None  # None: nothing to measure (round 0, or the source bought nothing)
    labeling: SourceGain | None
    cost_unit: str  # "usd" or "tokens"
    previous_share: float | None = None  # generation's share of the spend the previous split chose
    floor: float = SPLIT_FLOOR


@dataclass(frozen=True)
class BudgetSplit:
    generation: int  # teacher-written examples next round
    labeling: int  # texts the teacher labels next round
    share: float | None  # generation's share of the estimated spend (None: no cost measured yet)
    reason: str

    def record(self, state: SplitInput) -> dict[str, Any]:
        """The stored ``rounds.split_json``: the counts, what was measured and why."""
        measured = {
            name: None if s is None else {**asdict(s), "gain_per_cost": s.gain_per_cost if s.cost else None}
            for name, s in (("generation", state.generation), ("labeling", state.labeling))
        }
        return {
            "generation": self.generation,
            "labeling": self.labeling,
            "generation_share": self.share,
            "cost_unit": state.cost_unit,
            "measured": measured,
            "configured": {"generation": state.configured_generation, "labeling": state.configured_labeling},
            "reason": self.reason,
        }


def split_budget(state: SplitInput) -> BudgetSplit:
    """Next round's generation and labeling counts, at the spend the configured counts would cost.

    The share of spend moves toward the source with the higher held-back gain per unit cost: the target
    share is each source's positive gain per cost over their sum, averaged with the previous share (as the
    class quotas are, so one noisy measurement does not swing the budget), and kept within
    [floor, 1 − floor]. Without a measurement of both sources, or with no gain from either, the share
    stays where it was.
    """
    gen, lab = state.generation, state.labeling
    if gen is None or lab is None or not (gen.cost > 0 and lab.cost > 0):
        return BudgetSplit(
            state.configured_generation,
            state.configured_labeling,
            state.previous_share,
            "budget split: the configured counts (nothing measured yet for both generation and labeling)",
        )
    budget = state.configured_generation * gen.unit_cost + state.configured_labeling * lab.unit_cost
    configured_share = state.configured_generation * gen.unit_cost / budget
    previous = configured_share if state.previous_share is None else state.previous_share
    rates = (max(gen.gain_per_cost, 0.0), max(lab.gain_per_cost, 0.0))
    target = previous if not sum(rates) else rates[0] / sum(rates)
    share = min(max((target + previous) / 2, state.floor), 1 - state.floor)
    split = BudgetSplit(round(share * budget / gen.unit_cost), round((1 - share) * budget / lab.unit_cost), share, "")
    return replace(split, reason=_split_reason(state, split, previous))


def _split_reason(state: SplitInput, split: BudgetSplit, previous: float) -> str:
    assert state.generation is not None and state.labeling is not None and split.share is not None
    per = "per $" if state.cost_unit == "usd" else "per 1k tokens"
    scale = 1.0 if state.cost_unit == "usd" else 1000.0
    measured = ", ".join(
        f"{name} {s.gain:+.3f} for {_cost(s.cost, state.cost_unit)} ({s.gain_per_cost * scale:+.4f} {per})"
        for name, s in (("generation", state.generation), ("labeling", state.labeling))
    )
    if split.share > previous + 1e-9:
        direction = "toward generation"
    elif split.share < previous - 1e-9:
        direction = "toward labeling"
    else:
        direction = "unchanged"
    if state.generation.gain <= 0 and state.labeling.gain <= 0:
        direction += " (neither source raised held-back macro-F1, so no evidence to move)"
    return (
        f"budget split: {split.generation} generated examples, {split.labeling} labels next round "
        f"({split.share:.0%} of spend to generation, was {previous:.0%}; {direction}); held-back gain: {measured}"
    )


def _cost(value: float, unit: str) -> str:
    return f"${value:.4f}" if unit == "usd" else f"{value:,.0f} tokens"
