"""The decision policy is pure: quotas, floors, smoothing, and every stop reason."""

from __future__ import annotations

import random

import pytest

from agent.round_policy import (
    PolicyInput,
    SourceGain,
    SplitInput,
    allocate,
    best_round,
    decide,
    error_weights,
    split_budget,
)


def state(**overrides: object) -> PolicyInput:
    base: dict[str, object] = {
        "round": 1,
        "max_rounds": 5,
        "heldback_macro_f1": [0.5, 0.6],
        "patience": 2,
        "per_class_error": {"a": 0.1, "b": 0.5, "c": 0.9},
        "round_size": 60,
    }
    base.update(overrides)
    return PolicyInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_quotas_sum_to_round_size_and_respect_the_floor(seed: int) -> None:
    rng = random.Random(seed)
    labels = [f"c{i}" for i in range(rng.randint(2, 30))]
    errors = {c: rng.random() for c in labels}
    size = rng.randint(len(labels), 500)
    alpha = rng.choice([0.0, 0.3, 0.5, 0.9])
    decision = decide(state(per_class_error=errors, round_size=size, alpha=alpha))
    assert not decision.stop
    assert sum(decision.quotas.values()) == size
    floor = int((1 - alpha) / len(labels) * size)
    assert min(decision.quotas.values()) >= floor


def test_weaker_classes_get_more() -> None:
    quotas = decide(state()).quotas
    assert quotas["c"] > quotas["b"] > quotas["a"] > 0


def test_alpha_zero_is_uniform_and_weights_follow_the_formula() -> None:
    assert error_weights({"a": 0.1, "b": 0.9}, alpha=0.0) == {"a": 0.5, "b": 0.5}
    w = error_weights({"a": 0.0, "b": 1.0}, alpha=1.0)  # exp(0/0.5) : exp(1/0.5) = 1 : e²
    assert w["b"] / w["a"] == pytest.approx(2.718281828**2)


def test_smoothing_limits_jumps_between_rounds() -> None:
    previous = {"a": 0.9, "b": 0.05, "c": 0.05}
    errors = {"a": 0.0, "b": 0.0, "c": 1.0}
    smooth = decide(state(per_class_error=errors, previous_weights=previous)).weights
    raw = decide(state(per_class_error=errors)).weights
    assert abs(smooth["a"] - previous["a"]) < abs(raw["a"] - previous["a"])
    assert smooth["a"] == pytest.approx((raw["a"] + previous["a"]) / 2)


def test_no_smoothing_gives_error_proportional_quotas() -> None:
    decision = decide(state(per_class_error={"a": 0.0, "b": 0.25, "c": 0.75}, smoothing=False, round_size=100))
    assert decision.quotas == {"a": 0, "b": 25, "c": 75}


def test_allocate_largest_remainder() -> None:
    assert (
        allocate({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}
        or sum(allocate({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10).values()) == 10
    )


def test_patience_stops_and_names_the_best_round() -> None:
    decision = decide(state(round=3, heldback_macro_f1=[0.5, 0.7, 0.69, 0.65]))
    assert decision.stop and decision.best_round == 1
    assert any("early stop" in r and "patience 2" in r for r in decision.reasons)


def test_improvement_resets_patience() -> None:
    assert not decide(state(round=3, heldback_macro_f1=[0.5, 0.7, 0.69, 0.71])).stop


def test_round_cap_target_and_budget_reasons() -> None:
    assert any("round cap" in r for r in decide(state(round=5, heldback_macro_f1=[0.1] * 1)).reasons)
    target = decide(state(target_macro_f1=0.55))
    assert target.stop and any("target reached" in r for r in target.reasons)
    budget = decide(state(budget_stop="budget: max_usd=1"))
    assert budget.stop and budget.reasons[0] == "budget: max_usd=1"


def test_best_round_prefers_the_earliest_tie() -> None:
    assert best_round([0.5, 0.7, 0.7]) == 1


def test_round_size_zero_continues_without_allocating() -> None:
    """Active learning only (examples_per_round 0): no quotas to hand out, and no reason that claims one."""
    decision = decide(state(round_size=0))
    assert not decision.stop and decision.quotas is not None and sum(decision.quotas.values()) == 0
    assert not any("budget to the weakest" in r for r in decision.reasons)
    assert any("budget to the weakest" in r for r in decide(state()).reasons)


def split_state(gen_gain: float, lab_gain: float, **overrides: object) -> SplitInput:
    # Generation: 200 examples for 40,000 tokens (200 per example); labeling: 60 texts for 6,000 (100 per text).
    base: dict[str, object] = {
        "configured_generation": 200,
        "configured_labeling": 60,
        "generation": SourceGain(gain=gen_gain, cost=40_000, units=200),
        "labeling": SourceGain(gain=lab_gain, cost=6_000, units=60),
        "cost_unit": "tokens",
    }
    base.update(overrides)
    return SplitInput(**base)  # type: ignore[arg-type]


def test_split_moves_toward_the_source_with_more_gain_per_cost_at_the_same_spend() -> None:
    # Budget at the configured counts: 200·200 + 60·100 = 46,000 tokens; generation's share 40/46.
    # Gain per token: generation 0.02/40,000 = 0.5e-6, labeling 0.03/6,000 = 5e-6 → target share 1/11.
    split = split_budget(split_state(0.02, 0.03))
    configured = 40_000 / 46_000
    share = (1 / 11 + configured) / 2
    assert split.share == pytest.approx(share)
    assert split.generation == round(share * 46_000 / 200)
    assert split.labeling == round((1 - share) * 46_000 / 100)
    assert split.generation < 200 and split.labeling > 60, "toward labeling"
    assert split.generation * 200 + split.labeling * 100 == pytest.approx(46_000, abs=150), "same spend"
    assert (
        "toward labeling" in split.reason and "labeling +0.030 for 6,000 tokens (+0.0050 per 1k tokens)" in split.reason
    )
    record = split.record(split_state(0.02, 0.03))
    assert record["generation"] == split.generation and record["labeling"] == split.labeling
    assert record["cost_unit"] == "tokens" and record["measured"]["labeling"]["gain_per_cost"] == pytest.approx(5e-6)
    assert record["reason"] == split.reason


def test_split_keeps_a_floor_for_the_losing_source_and_moves_back() -> None:
    # Labeling gains nothing: the target is all generation, the smoothed share stops at 1 − floor.
    split = split_budget(split_state(0.05, -0.01, previous_share=0.7))
    assert split.share == pytest.approx(0.8) and "toward generation" in split.reason
    assert split.labeling == round(0.2 * 46_000 / 100) > 0, "the other source keeps being measured"
    low = split_budget(split_state(0.0, 0.05, previous_share=0.25))
    assert low.share == pytest.approx(0.2)


def test_split_without_evidence_keeps_the_configured_or_previous_counts() -> None:
    first = split_budget(split_state(0.0, 0.0, generation=None, labeling=None))
    assert (first.generation, first.labeling, first.share) == (200, 60, None)
    assert "nothing measured" in first.reason
    flat = split_budget(split_state(-0.01, 0.0, previous_share=0.5))
    assert flat.share == pytest.approx(0.5) and "no evidence to move" in flat.reason
    usd = split_budget(split_state(0.01, 0.02, cost_unit="usd"))
    assert "per $" in usd.reason and "$" in usd.reason
