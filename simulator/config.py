"""The simulator's settings, defined once: each field's default, help text and valid range live here.

``SimulatorKnobs`` are the behaviour knobs. Everything else derives from it: a spec's
``teacher.knobs`` is validated against it (through the ``distill.teacher_servers`` plugin seam, see
``simulator.plugin``), ``distill simulate`` has one option per field with the field's description as
its help, and ``SimulatorConfig``, what the server runs with, extends it with the model id, the API
key and the policy file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.conformance import PROFILE_NAMES

# Per-request faults are drawn from one uniform number, so their rates must sum to at most 1.
FAULT_RATE_FIELDS = ("rate_429", "rate_5xx", "rate_hang", "rate_malformed", "rate_truncated")


# strict: a YAML `true` or a string is a mistake, not a number (an int is fine where a float is asked).
def _rate(default: float, description: str) -> Any:
    return Field(default, ge=0, le=1, strict=True, allow_inf_nan=False, description=description)


def _non_negative(default: float, description: str) -> Any:
    return Field(default, ge=0, strict=True, allow_inf_nan=False, description=description)


class SimulatorKnobs(BaseModel):
    """Everything that shapes the simulator's behaviour; the defaults make a fast, faultless teacher."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(
        0, strict=True, description="Seed of the fault and content random generators (same requests → same answers)."
    )
    latency_ms: float = _non_negative(0.0, "Mean latency added to every chat completion, in milliseconds.")
    jitter_ms: float = _non_negative(0.0, "Standard deviation of the latency (normal, clipped at 0), in milliseconds.")
    rate_429: float = _rate(0.0, "Probability that a request is answered 429 (rate limited) with Retry-After.")
    retry_after_s: float = _non_negative(1.0, "Seconds sent in the Retry-After header of 429 answers.")
    rate_5xx: float = _rate(0.0, "Probability that a request is answered 500 or 503 (server error).")
    rate_hang: float = _rate(0.0, "Probability that a request hangs for hang_s before answering normally.")
    hang_s: float = _non_negative(30.0, "How long a hanging request sleeps; the client's timeout should fire first.")
    rate_malformed: float = _rate(0.0, "Probability of a 200 whose content is not valid JSON (prose + cut JSON).")
    rate_truncated: float = _rate(0.0, "Probability of a 200 cut mid-JSON with finish_reason 'length'.")
    label_noise: float = _rate(
        0.0,
        "Per example: draw the text from the most confusable class but keep the requested label; "
        "for the label action, answer the confusable class.",
    )
    dup_rate: float = _rate(0.0, "Per generated example: repeat an item the simulator returned earlier.")
    copy_rate: float = _rate(0.0, "Per generated example: echo one of the brief's 'like' texts verbatim (leakage).")
    refusal_rate: float = _rate(0.0, "Per generated example: the text is a refusal instead of data.")
    diversity_width: int = Field(
        8,
        ge=1,
        strict=True,
        description="With 'like' texts, sample n items uniformly from the top diversity_width × n most similar ones.",
    )
    batch_delay_s: float = _non_negative(
        0.0,
        "Batch API: seconds from a job's creation until it is completed; it is in_progress until then, its "
        "request_counts growing with the time elapsed (0: completed at the first poll).",
    )
    batch_failure_rate: float = _rate(
        0.0, "Batch API: probability that a line fails with a 500 (it goes to the job's error file)."
    )
    profile: str | None = Field(
        None,
        description="Conformance profile: reject what this real provider rejects, with its status and error body, "
        f"and ignore response_format where it does ({', '.join(PROFILE_NAMES)}); unset: accept any request.",
        json_schema_extra={"enum": [*PROFILE_NAMES, None]},
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in PROFILE_NAMES:
            raise ValueError(f"must be one of {', '.join(PROFILE_NAMES)} or unset, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_fault_per_request(self) -> SimulatorKnobs:
        total = sum(getattr(self, name) for name in FAULT_RATE_FIELDS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"{' + '.join(FAULT_RATE_FIELDS)} must sum to at most 1 (one fault per request), got {total:g}"
            )
        return self


class SimulatorConfig(SimulatorKnobs):
    """What the server runs with: the knobs plus the model id, the API key and the strategy-teaching policy."""

    model: str = Field("sim-teacher", description="Model id listed by /v1/models and reported in completions.")
    api_key: str | None = Field(
        None,
        min_length=1,
        repr=False,
        description="If set, every /v1 request must carry 'Authorization: Bearer <api_key>'.",
    )
    policy_path: str | None = Field(
        None,
        description="Policy YAML (flows of intents with checkable criteria) for the strategy-teaching actions "
        "scenario, respond, judge and strategize; without it those actions answer 400.",
    )

    @field_validator("model")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("policy_path", mode="before")
    @classmethod
    def _valid_policy(cls, value: Any) -> str | None:
        """Fail at start, not at the first dialogue request: the file must exist and be a valid policy."""
        if value is None:
            return None
        if not isinstance(value, str | Path) or not str(value):
            raise ValueError(f"must be a path to a policy YAML file or None, got {value!r}")
        if not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        from generators.service_policy import Policy  # imported here: the config must stay cheap to import

        Policy.load(value)  # PolicyError is a ValueError naming the flow and criterion at fault
        return str(value)


def describe(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, ``prefix + field: message, got value`` (the form errors take in the CLI)."""
    lines = []
    for problem in error.errors():
        where = prefix + ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        shown = problem.get("input")
        got = "" if problem["type"] == "value_error" or isinstance(shown, dict) else f", got {shown!r}"
        lines.append(f"{where}: {message}{got}" if where else message)
    return lines
