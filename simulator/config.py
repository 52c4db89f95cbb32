"""The simulator's knobs: one dataclass, help text in field metadata, validation in ``__post_init__``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from simulator.conformance import PROFILE_NAMES

# Per-request faults are drawn from one uniform number, so their rates must sum to at most 1.
FAULT_RATE_FIELDS = ("rate_429", "rate_5xx", "rate_hang", "rate_malformed", "rate_truncated")
# Per-example content knobs are independent probabilities.
EXAMPLE_RATE_FIELDS = ("label_noise", "dup_rate", "copy_rate", "refusal_rate")
# Per Batch API line, independent of the per-request faults.
BATCH_RATE_FIELDS = ("batch_failure_rate",)
_NON_NEGATIVE_FIELDS = ("latency_ms", "jitter_ms", "retry_after_s", "hang_s", "batch_delay_s")


def _knob(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes the simulator's behaviour; the defaults make a fast, faultless teacher."""

    model: str = _knob("sim-teacher", "Model id listed by /v1/models and reported in completions.")
    seed: int = _knob(0, "Seed of the fault and content random generators (same requests → same answers).")
    latency_ms: float = _knob(0.0, "Mean latency added to every chat completion, in milliseconds.")
    jitter_ms: float = _knob(0.0, "Standard deviation of the latency (normal, clipped at 0), in milliseconds.")
    rate_429: float = _knob(0.0, "Probability that a request is answered 429 (rate limited) with Retry-After.")
    retry_after_s: float = _knob(1.0, "Seconds sent in the Retry-After header of 429 answers.")
    rate_5xx: float = _knob(0.0, "Probability that a request is answered 500 or 503 (server error).")
    rate_hang: float = _knob(0.0, "Probability that a request hangs for hang_s before answering normally.")
    hang_s: float = _knob(30.0, "How long a hanging request sleeps; the client's timeout should fire first.")
    rate_malformed: float = _knob(0.0, "Probability of a 200 whose content is not valid JSON (prose + cut JSON).")
    rate_truncated: float = _knob(0.0, "Probability of a 200 cut mid-JSON with finish_reason 'length'.")
    label_noise: float = _knob(
        0.0,
        "Per example: draw the text from the most confusable class but keep the requested label; "
        "for the label action, answer the confusable class.",
    )
    dup_rate: float = _knob(0.0, "Per generated example: repeat an item the simulator returned earlier.")
    copy_rate: float = _knob(0.0, "Per generated example: echo one of the brief's 'like' texts verbatim (leakage).")
    refusal_rate: float = _knob(0.0, "Per generated example: the text is a refusal instead of data.")
    diversity_width: int = _knob(
        8, "With 'like' texts, sample n items uniformly from the top diversity_width × n most similar ones."
    )
    batch_delay_s: float = _knob(
        0.0,
        "Batch API: seconds from a job's creation until it is completed; it is in_progress until then, its "
        "request_counts growing with the time elapsed (0: completed at the first poll).",
    )
    batch_failure_rate: float = _knob(
        0.0, "Batch API: probability that a line fails with a 500 (it goes to the job's error file)."
    )
    api_key: str | None = _knob(None, "If set, every /v1 request must carry 'Authorization: Bearer <api_key>'.")
    policy_path: str | None = _knob(
        None,
        "Policy YAML (flows of intents with checkable criteria) for the strategy-teaching actions "
        "scenario, respond, judge and strategize; without it those actions answer 400.",
    )
    profile: str | None = _knob(
        None,
        "Conformance profile: reject what this real provider rejects, with its status and error body, and "
        f"ignore response_format where it does ({', '.join(PROFILE_NAMES)}); unset: accept any request.",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("model must be a non-empty string")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in FAULT_RATE_FIELDS + EXAMPLE_RATE_FIELDS + BATCH_RATE_FIELDS:
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in _NON_NEGATIVE_FIELDS:
            _check_range(name, getattr(self, name), 0.0, math.inf)
        total = sum(getattr(self, name) for name in FAULT_RATE_FIELDS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"{' + '.join(FAULT_RATE_FIELDS)} must sum to at most 1 (one fault per request), got {total:g}"
            )
        if (
            isinstance(self.diversity_width, bool)
            or not isinstance(self.diversity_width, int)
            or self.diversity_width < 1
        ):
            raise ValueError(f"diversity_width must be an integer ≥ 1, got {self.diversity_width!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty string or None (no authentication)")
        if self.profile is not None and self.profile not in PROFILE_NAMES:
            raise ValueError(f"profile must be one of {', '.join(PROFILE_NAMES)} or unset, got {self.profile!r}")
        if self.policy_path is not None:
            _check_policy(self.policy_path)
            object.__setattr__(self, "policy_path", str(self.policy_path))  # a Path is fine, but store text

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a plain dict, with the API key masked (safe to log or print)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["api_key"] is not None:
            values["api_key"] = "***"
        return values


def knob_help(name: str) -> str:
    """The help text of knob ``name`` (the CLI reuses it, so the two never drift apart)."""
    for f in fields(SimulatorConfig):
        if f.name == name:
            return str(f.metadata["help"])
    raise KeyError(name)


def _check_policy(path: Any) -> None:
    """Fail at start, not at the first dialogue request: the file must exist and be a valid policy."""
    if not isinstance(path, str | Path) or not str(path):
        raise ValueError(f"policy_path must be a path to a policy YAML file or None, got {path!r}")
    if not Path(path).is_file():
        raise ValueError(f"policy_path: no such file: {path}")
    from generators.service_policy import Policy  # imported here: the config must stay cheap to import

    Policy.load(path)  # PolicyError is a ValueError naming the flow and criterion at fault


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or math.isnan(value) or not low <= value <= high:
        upper = "∞)" if math.isinf(high) else f"{high:g}]"
        raise ValueError(f"{name} must be a number in [{low:g}, {upper}, got {value!r}")
