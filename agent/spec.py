"""Task spec: the YAML file that describes one distillation run.

Validated by pydantic with ``extra="forbid"``, so a typo is an error, not a silently ignored key.
Relative paths are resolved against the spec file's folder. ``SpecError`` carries one line per
problem, each naming the field path and the fix.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from agent.errors import InputError
from agent.teacher_endpoint import EndpointError, TeacherServerMissing, resolve_endpoint, teacher_server
from generators.generation import OUT_OF_SCOPE
from trainers.causal_config import CausalLMConfig
from trainers.config import EncoderConfig


class SpecError(InputError):
    """The spec is invalid; ``problems`` holds one human-readable line per problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileOverrides(_Strict):
    """Field-by-field overrides of the provider profile (see ``generators.providers``); unset keeps the default."""

    token_limit_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    sends_temperature: bool | None = Field(None, description="False for models that accept only the default.")
    max_temperature: float | None = Field(None, ge=0, le=2)
    structured_output: Literal["json_schema", "json_object_schema", "json_object", "prompt"] | None = Field(
        None,
        description="json_schema: constrained decoding; json_object_schema: llama.cpp's JSON mode with a "
        "schema; json_object: JSON mode; prompt: JSON asked for in the prompt and validated.",
    )
    strict_schema: bool | None = None
    reports_usage: bool | None = Field(None, description="False: tokens are estimated from the text.")
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    reasoning_allowance: int | None = Field(
        None,
        ge=0,
        description="Completion tokens reserved for hidden reasoning on top of the answer (reasoning models).",
    )


# The response cache's file in a run directory when the spec names no teacher.cache; `--fresh` keeps it.
RUN_CACHE_FILE = "cache.sqlite"


class _TeacherCommon(_Strict):
    model: str = Field(..., min_length=1, description="Model name sent to the provider.")
    price_input_per_mtok: float = Field(0.0, ge=0, description="USD per 1M input tokens.")
    price_output_per_mtok: float = Field(0.0, ge=0, description="USD per 1M output tokens.")
    max_concurrency: int = Field(8, ge=1, le=512)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(6, ge=1, le=20, description="Attempts per call, first one included.")
    max_retry_wait_s: float = Field(30.0, gt=0, description="Cap on any single wait, Retry-After included.")
    temperature: float = Field(0.9, ge=0, le=2, description="Generation temperature; labeling and judging use 0.")
    max_output_tokens: int = Field(
        4096,
        ge=16,
        description="Ceiling on any call's output tokens; each call asks "
        "for what its template needs (and the budget affords) below it.",
    )
    profile: ProfileOverrides = Field(default_factory=ProfileOverrides)
    batch: bool = Field(
        False,
        description="Seed generation and labeling through the OpenAI Batch API: one "
        "uploaded job, answered within 24 h at the batch price.",
    )
    batch_price_factor: float = Field(0.5, gt=0, le=1, description="Batch price ÷ synchronous price.")
    batch_poll_s: float = Field(30.0, gt=0, description="Seconds between polls of a batch job.")
    cache: Path | None = Field(
        None,
        description="The response cache (SQLite) to use; give one path to several specs and a run whose "
        "requests were already answered pays nothing for them. Relative to the spec's folder; "
        f"default: <run dir>/{RUN_CACHE_FILE}.",
    )
    audit_model: str | None = Field(
        None,
        min_length=1,
        description="Model asked for the second opinion on labels the audit flags (same endpoint and key); "
        "default: the teacher's model, with the audit prompt.",
    )


class RemoteTeacher(_TeacherCommon):
    """A real provider behind an OpenAI-compatible API: OpenAI, Anthropic, vLLM, Ollama, llama.cpp, or another."""

    provider: Literal["openai", "anthropic", "vllm", "ollama", "llama_cpp", "generic"]
    base_url: str | None = Field(
        None,
        min_length=1,
        description="Default: OPENAI_BASE_URL when set, else the provider's usual URL (generic: required).",
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the key; the key itself never goes in a spec. "
        "Default: OPENAI_API_KEY (openai), ANTHROPIC_API_KEY (anthropic); local servers need none.",
    )


class SimulatorTeacher(_TeacherCommon):
    """The teacher simulator: started on loopback for the run (``pool``), or one already serving (``base_url``)."""

    provider: Literal["simulator"]
    model: str = "sim-teacher"
    pool: Path | None = Field(
        None, description="JSONL file of human-written {text, label} items backing the simulator started for this run."
    )
    knobs: dict[str, Any] = Field(
        default_factory=dict,
        description="Fault and realism knobs of the simulator started for this run (`distill simulate --help` "
        "lists them); validated by the simulator plugin, then filled in with the defaults.",
    )
    policy: Path | None = Field(None, description="Policy file (YAML) for strategy-teaching actions.")
    base_url: str | None = Field(
        None,
        min_length=1,
        description="URL of a running `distill simulate` to use "
        "instead of starting one (its own --pool and knobs apply).",
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the variable holding the running simulator's key.",
    )

    @model_validator(mode="after")
    def _pool_or_url(self) -> SimulatorTeacher:
        if (self.pool is None) == (self.base_url is None):
            raise ValueError(
                "give teacher.pool (start a simulator for this run) or teacher.base_url (use one "
                "already serving), not both and not neither"
            )
        return self


TeacherSpec = Annotated[RemoteTeacher | SimulatorTeacher, Field(discriminator="provider")]


class Budget(_Strict):
    """Hard limits; the gateway refuses a call that could cross a money or token limit."""

    max_usd: float | None = Field(None, gt=0)
    max_teacher_tokens: int | None = Field(None, gt=0)
    max_rounds: int | None = Field(None, ge=0, description="Hard ceiling on generation rounds.")
    max_minutes: float | None = Field(None, gt=0)


class LabelSpec(_Strict):
    name: str = Field(..., min_length=1)
    description: str = ""


# Past this many labels, per-label prompts and quotas stop making sense (DESIGN §4: cost grows with labels²).
MAX_LABELS = 2000


class ColumnMap(_Strict):
    """Which column (CSV/TSV header, ``datasets`` feature, JSONL key) holds the text and which the label."""

    text: str = Field("text", min_length=1, description="Column holding the text.")
    label: str = Field("label", min_length=1, description="Column holding the label (labeled files only).")


DATA_FILE_HELP = "JSONL, CSV or TSV (by extension), or a `datasets` folder written by save_to_disk"


class ClassificationTask(_Strict):
    kind: Literal["classification"] = "classification"
    description: str = Field(..., min_length=1, description="What the texts are and what the labels mean.")
    labels: list[LabelSpec] = Field(..., min_length=2)
    seed_examples: Path | None = Field(None, description=f"Optional labeled examples: {DATA_FILE_HELP}.")
    validation: Path | None = Field(
        None, description=f"Labeled ({DATA_FILE_HELP}); built from teacher-labeled data when absent."
    )
    test: Path | None = Field(
        None, description=f"Labeled ({DATA_FILE_HELP}); reported only, never used for a decision."
    )
    unlabeled: Path | None = Field(
        None,
        description=f"Texts from your users ({DATA_FILE_HELP}), for active learning: "
        "each round the teacher labels the ones the student is least sure of.",
    )
    columns: ColumnMap = Field(
        default_factory=ColumnMap,
        description="Column names of the text and label in these files, e.g. {text: utterance, label: intent}.",
    )
    out_of_scope: bool = Field(
        False,
        description=f"Add a 'none of these' outcome ({OUT_OF_SCOPE!r}): the teacher may answer it, generation "
        "writes near-domain messages that fit no label as negatives, and the student rejects what it should "
        f"not answer. Labeled files may then use the label {OUT_OF_SCOPE!r}.",
    )

    @field_validator("labels")
    @classmethod
    def _not_too_many(cls, labels: list[LabelSpec]) -> list[LabelSpec]:
        if len(labels) > MAX_LABELS:
            raise ValueError(
                f"{len(labels):,} labels, more than the {MAX_LABELS:,} supported — per-label teacher prompts and "
                "generation quotas stop making sense at that size; group related labels into coarser classes "
                "(one classifier per group)"
            )
        return labels

    @model_validator(mode="after")
    def _unique_labels(self) -> ClassificationTask:
        counts = Counter(label.name for label in self.labels)
        duplicates = sorted(name for name, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate label names {duplicates}; give every label a unique name")
        if self.out_of_scope and OUT_OF_SCOPE in counts:
            raise ValueError(
                f"label {OUT_OF_SCOPE!r} is reserved when out_of_scope is true (it is the 'none of these' "
                "outcome); remove it from labels or rename it"
            )
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


class LoopSpec(_Strict):
    method: Literal["pgkd", "pgkd_nosmooth", "uniform"] = Field(
        "pgkd",
        description="pgkd: feedback prompts + DDK-smoothed quotas; pgkd_nosmooth: error-proportional "
        "quotas; uniform: no feedback, even quotas (a baseline).",
    )
    max_rounds: int = Field(4, ge=0, le=100)
    seed_per_label: int = Field(8, ge=0, description="Teacher-written examples per label in round 0.")
    examples_per_round: int = Field(
        200, ge=0, description="Teacher-written examples per round (0: only active learning adds data)."
    )
    patience: int = Field(2, ge=1)
    target_macro_f1: float | None = Field(None, gt=0, le=1)
    smoothing_alpha: float = Field(0.5, ge=0, le=1, description="DDK mix: α·error-weights + (1−α)·uniform.")
    feedback_fraction: float = Field(0.5, gt=0, lt=1, description="Share of validation the teacher may see.")
    examples_shown: int = Field(3, ge=0, le=20, description="Correct/misclassified/hard examples per prompt.")
    batch_per_call: int = Field(10, ge=1, le=50, description="Examples requested per teacher call.")
    validation_per_label: int = Field(10, ge=2, description="When no validation file: teacher-labeled items.")
    active_per_round: int = Field(0, ge=0, description="Texts of task.unlabeled the teacher labels each round.")
    active_selection: Literal["margin", "margin_diversity", "random"] = Field(
        "margin",
        description="margin: smallest top-1 − top-2 probability first (uncertainty sampling); "
        "margin_diversity: the most uncertain candidates, thinned to a diverse set (k-center on embeddings); "
        "random: a uniform draw (a baseline).",
    )
    budget_split: Literal["fixed", "adaptive"] = Field(
        "fixed",
        description="With generation and task.unlabeled both on: fixed keeps examples_per_round and "
        "active_per_round; adaptive moves each round's teacher budget toward the source with the higher "
        "measured held-back gain per dollar, and records why.",
    )
    label_audit: bool = Field(
        True,
        description="After filtering: flag likely wrong labels by confident learning on out-of-fold "
        "probabilities; flagged items get a second teacher opinion (relabelled, kept or dropped, with the reason).",
    )
    audit_folds: int = Field(5, ge=2, le=20, description="Folds of the out-of-fold probabilities of the label audit.")
    active_candidates: int = Field(
        5000,
        ge=1,
        description="Unlabeled texts scored per round (a seeded sample "
        "of task.unlabeled when it is larger: scoring is CPU inference).",
    )


class FilterSpec(_Strict):
    near_duplicate_threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity above = duplicate.")
    leakage_threshold: float = Field(0.95, gt=0, le=1, description="Cosine to a val/test text above = leak.")
    min_chars: int = Field(3, ge=1)
    max_chars: int = Field(600, ge=10)


class CardSpec(_Strict):
    """What the exported model's card declares; the data's licence limits what you may choose here."""

    license: str = Field(
        "other",
        min_length=1,
        description="The model's licence as a Hugging Face licence id (apache-2.0, mit, cc-by-4.0, …); "
        "'other' until you set it, because it depends on your data's and your teacher's terms.",
    )
    language: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes of the texts.")
    tags: list[str] = Field(default_factory=list, description="Extra Hub tags for the card.")
    datasets: list[str] = Field(
        default_factory=list, description="Hub ids of the datasets the training or evaluation data came from."
    )


class DeploySpec(_Strict):
    """How the exported model answers: the deferral threshold is chosen on held-back to meet one target."""

    target_accuracy: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Accuracy wanted on the messages the student answers (measured on held-back): "
        "predict defers below the lowest confidence threshold that reaches it.",
    )
    max_defer_rate: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Largest share of messages predict may defer (on held-back): the threshold is "
        "the highest that defers at most this share.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> DeploySpec:
        if self.target_accuracy is not None and self.max_defer_rate is not None:
            raise ValueError("deploy: give target_accuracy or max_defer_rate, not both")
        return self


def _student_kind(value: Any) -> str:
    """Which student config a ``student:`` section is: its ``kind``, encoder when absent."""
    kind = value.get("kind", "encoder") if isinstance(value, dict) else getattr(value, "kind", "encoder")
    return str(kind)


# The trainers' own settings models (torch-free): every setting of either student can be set from a spec.
StudentConfig = Annotated[
    Annotated[EncoderConfig, Tag("encoder")] | Annotated[CausalLMConfig, Tag("causal_lm")],
    Discriminator(_student_kind),
]


class RunSpec(_Strict):
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    task: ClassificationTask
    teacher: TeacherSpec
    student: StudentConfig = Field(default_factory=EncoderConfig)
    loop: LoopSpec = Field(default_factory=LoopSpec)
    filters: FilterSpec = Field(default_factory=FilterSpec)
    budget: Budget = Field(default_factory=Budget)
    card: CardSpec = Field(default_factory=CardSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)

    @property
    def effective_max_rounds(self) -> int:
        cap = self.budget.max_rounds
        return self.loop.max_rounds if cap is None else min(cap, self.loop.max_rounds)


class ScenarioSpec(_Strict):
    """Where learning and held-out scenarios come from."""

    source: Literal["teacher", "file"] = Field(
        "teacher", description="teacher: the teacher writes scenarios; file: real customer messages."
    )
    file: Path | None = Field(None, description="JSONL {text, label=intent} of real customer messages.")
    learn: int = Field(24, ge=1, description="Learning scenarios per round.")
    heldout: int = Field(24, ge=1, description="Held-out scenarios for evaluation (never learned on).")

    @model_validator(mode="after")
    def _file_needed(self) -> ScenarioSpec:
        if self.source == "file" and self.file is None:
            raise ValueError("scenarios.source is 'file' but scenarios.file is not set; give a JSONL path")
        return self


class DialogueTask(_Strict):
    kind: Literal["dialogue"]
    description: str = Field(..., min_length=1)
    policy: Path = Field(..., description="Policy/rubric YAML: flows with checkable criteria.")
    scenarios: ScenarioSpec = Field(default_factory=ScenarioSpec)


class StudentLLMSpec(_Strict):
    """The black-box student: `local:smollm2`, `local:/path/to/hf-folder`, or an OpenAI-compatible URL."""

    endpoint: str = Field("local:smollm2", min_length=1)
    model: str = Field("local-student", min_length=1)
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(96, ge=8, le=2048)
    sft: CausalLMConfig = Field(
        default_factory=CausalLMConfig,
        description="How loop.fine_tune trains the student (TRL SFT); its base model is the endpoint's local model.",
    )


class StrategyLoopSpec(_Strict):
    max_rounds: int = Field(2, ge=1, le=50)
    top_k: int = Field(3, ge=0, le=20, description="Strategies retrieved into the student's prompt.")
    use_proposed_during_learning: bool = True
    parity_margin: float = Field(0.05, ge=0, le=1, description="Stop when student ≥ teacher − margin.")
    auto_approve: bool = Field(False, description="Approve strategies that showed an effect (no human review).")
    fine_tune: Literal["none", "teacher_answers", "strategy_answers"] = Field(
        "none",
        description="After learning, also fine-tune a local student: on the teacher's reference answers (the SFT "
        "baseline) or on the student's own best strategy-guided answers (strategies into weights); "
        "evaluated on the same held-out scenarios.",
    )


class DialogueRunSpec(_Strict):
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    task: DialogueTask
    teacher: TeacherSpec
    student: StudentLLMSpec = Field(default_factory=StudentLLMSpec)
    loop: StrategyLoopSpec = Field(default_factory=StrategyLoopSpec)
    budget: Budget = Field(default_factory=Budget)

    @model_validator(mode="after")
    def _fine_tune_needs_a_local_student(self) -> DialogueRunSpec:
        if self.loop.fine_tune != "none" and not self.student.endpoint.startswith("local:"):
            raise ValueError(
                "loop.fine_tune needs a student whose weights distill can train: set student.endpoint to "
                "local:smollm2 or local:/path/to/hf-folder (a remote endpoint cannot be fine-tuned)"
            )
        base = self.student.sft.base_model
        if base not in (CausalLMConfig().base_model, self.student.endpoint.removeprefix("local:")):
            raise ValueError("student.sft.base_model: remove it; the fine-tuned model is student.endpoint's")
        return self


_STUDENT_KINDS = ("encoder", "causal_lm")
_TEACHER_TAGS = ("openai", "anthropic", "vllm", "ollama", "llama_cpp", "generic", "simulator")
_FIX_BY_TYPE = {
    "extra_forbidden": "remove it, or check its spelling against the documented keys",
    "missing": "add it",
    "union_tag_invalid": "set teacher.provider to one of openai, anthropic, vllm, ollama, llama_cpp, generic, "
    "simulator",
    "union_tag_not_found": "add teacher.provider (openai, anthropic, vllm, ollama, llama_cpp, generic or simulator)",
    "literal_error": "use one of the values listed",
}


def _format_error(error: Any) -> str:
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    if len(loc) > 1 and loc[0] == "teacher" and loc[1] in _TEACHER_TAGS:
        del loc[1]  # the discriminator tag pydantic inserts is not a key the user wrote
    if len(loc) > 1 and loc[0] == "student" and loc[1] in _STUDENT_KINDS:
        del loc[1]
    if loc == ["student"] and error["type"] == "union_tag_invalid":
        return f"student.kind: {error['ctx']['tag']!r} is not a student kind — use {' or '.join(_STUDENT_KINDS)}"
    path = ".".join(loc)
    if error["type"] == "value_error":  # our own validators: the message names the fix already
        message = str(error["msg"]).removeprefix("Value error, ")
        return f"{path or '(top level)'}: {message}"
    fix = _FIX_BY_TYPE.get(error["type"], "fix the value")
    return f"{path or '(top level)'}: {error['msg']} — {fix}"


def _path_fields(spec: RunSpec | DialogueRunSpec) -> list[tuple[str, BaseModel, str]]:
    if isinstance(spec, DialogueRunSpec):
        fields: list[tuple[str, BaseModel, str]] = [
            ("task.policy", spec.task, "policy"),
            ("task.scenarios.file", spec.task.scenarios, "file"),
        ]
    else:
        fields = [
            ("task.seed_examples", spec.task, "seed_examples"),
            ("task.validation", spec.task, "validation"),
            ("task.test", spec.task, "test"),
            ("task.unlabeled", spec.task, "unlabeled"),
        ]
    if isinstance(spec.teacher, SimulatorTeacher):
        fields += [("teacher.pool", spec.teacher, "pool"), ("teacher.policy", spec.teacher, "policy")]
    return fields


def _resolve_paths(spec: RunSpec | DialogueRunSpec, base: Path) -> list[str]:
    """Make relative paths absolute (relative to the spec file) and report files that do not exist."""
    problems: list[str] = []
    fields = _path_fields(spec)
    for dotted, owner, attr in fields:
        value = getattr(owner, attr)
        if value is None:
            continue
        resolved = value if value.is_absolute() else (base / value).resolve()
        object.__setattr__(owner, attr, resolved)
        if not (resolved.is_file() or (dotted in _FOLDER_FIELDS and resolved.is_dir())):
            problems.append(f"{dotted}: file {value} not found (looked in {base}) — give a path relative to the spec")
    return problems + _resolve_cache(spec, base)


# Fields that may name a `datasets` folder (save_to_disk) instead of a file.
_FOLDER_FIELDS = ("task.seed_examples", "task.validation", "task.test", "task.unlabeled")


def _resolve_cache(spec: RunSpec | DialogueRunSpec, base: Path) -> list[str]:
    """Make ``teacher.cache`` absolute; it need not exist yet (the first run creates it)."""
    cache = spec.teacher.cache
    if cache is None:
        return []
    resolved = cache if cache.is_absolute() else (base / cache).resolve()
    object.__setattr__(spec.teacher, "cache", resolved)
    if resolved.is_dir():
        return [f"teacher.cache: {cache} is a directory — give the path of a file, e.g. {cache}/{RUN_CACHE_FILE}"]
    return []


def response_cache_path(spec: RunSpec | DialogueRunSpec, run_dir: Path) -> Path:
    """Where the run's teacher responses are cached: ``teacher.cache``, else ``<run_dir>/cache.sqlite``."""
    return spec.teacher.cache or run_dir / RUN_CACHE_FILE


_BATCH_PROVIDERS = ("openai", "generic", "simulator")


def _teacher_problems(spec: RunSpec | DialogueRunSpec) -> list[str]:
    teacher = spec.teacher
    if teacher.batch and teacher.provider not in _BATCH_PROVIDERS:
        return [
            f"teacher.batch: provider {teacher.provider!r} offers no /v1/batches endpoint (OpenAI's Batch "
            "API) — set batch: false, or use provider openai or generic for a gateway that has one"
        ]
    return []


def _knob_problems(spec: RunSpec | DialogueRunSpec) -> list[str]:
    """Validate ``teacher.knobs`` with the teacher-server plugin's own model and fill in its defaults.

    The knobs are defined once, in the simulator; the spec reaches them through the plugin seam
    (``agent.teacher_endpoint.teacher_server``) rather than importing the simulator.
    """
    teacher = spec.teacher
    if not isinstance(teacher, SimulatorTeacher) or (teacher.pool is None and not teacher.knobs):
        return []  # a running simulator at base_url, no knobs: nothing to validate here
    try:
        knobs_model = teacher_server(teacher.provider).knobs
    except TeacherServerMissing as exc:
        return [f"teacher.provider: {exc}"]
    try:
        knobs = knobs_model.model_validate(teacher.knobs)
    except ValidationError as exc:
        return [_format_error({**e, "loc": ("teacher", "knobs", *e["loc"])}) for e in exc.errors()]
    object.__setattr__(teacher, "knobs", knobs.model_dump(mode="json"))  # the resolved spec shows every knob
    return []


def _loop_problems(spec: RunSpec | DialogueRunSpec) -> list[str]:
    """Checks across sections of a classification spec, each naming the field to change."""
    if not isinstance(spec, RunSpec):
        return []
    loop, problems = spec.loop, []
    if not loop.examples_per_round and not loop.active_per_round and loop.max_rounds:
        problems.append(
            "loop.examples_per_round: is 0 and active learning is off, so rounds would add no data — "
            "set it > 0, or set loop.active_per_round with task.unlabeled"
        )
    if loop.active_per_round and spec.task.unlabeled is None:
        problems.append(
            'loop.active_per_round: needs task.unlabeled — give a JSONL of unlabeled {"text"} lines, '
            "or set loop.active_per_round: 0"
        )
    if loop.budget_split == "adaptive" and not (loop.examples_per_round and loop.active_per_round):
        problems.append(
            "loop.budget_split: adaptive splits the budget between generation and active labeling, so it needs "
            "loop.examples_per_round > 0 and loop.active_per_round > 0 with task.unlabeled — set both, "
            "or budget_split: fixed"
        )
    return problems


SpecT = TypeVar("SpecT", RunSpec, DialogueRunSpec)


def _validate(model: type[SpecT], data: Any, base_dir: Path) -> SpecT:
    """Validate ``data`` as ``model``, resolve its paths; raise ``SpecError`` listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(["(top level): the spec must be a YAML mapping — start with 'name:', 'task:', 'teacher:'"])
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_format_error(e) for e in exc.errors()]) from None
    problems = _resolve_paths(spec, base_dir) + _teacher_problems(spec) + _knob_problems(spec) + _loop_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def parse_any_spec(data: Any, base_dir: Path) -> RunSpec | DialogueRunSpec:
    """Validate a spec of either kind (``task.kind``: classification or dialogue)."""
    task = data.get("task") if isinstance(data, dict) else None
    if isinstance(task, dict) and task.get("kind") == "dialogue":
        return _validate(DialogueRunSpec, data, base_dir)
    return _validate(RunSpec, data, base_dir)


def parse_spec(data: Any, base_dir: Path) -> RunSpec:
    """Validate a classification spec given as plain data."""
    return _validate(RunSpec, data, base_dir)


def read_spec_data(path: Path) -> Any:
    from agent.data_files import DataFileError, read_user_text

    if not path.is_file():
        raise SpecError([f"spec: file {path} not found — pass the path of a YAML task spec"])
    try:
        text = read_user_text(path, "spec")  # invalid UTF-8 named with its line; a BOM is accepted
    except DataFileError as exc:
        raise SpecError(exc.problems) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # YAML errors span several lines; one line for the user
        raise SpecError([f"spec: {path} is not valid YAML ({detail}) — fix the syntax"]) from None


def load_any_spec(path: Path) -> RunSpec | DialogueRunSpec:
    return parse_any_spec(read_spec_data(path), path.resolve().parent)


def load_spec(path: Path) -> RunSpec:
    """Read and validate a YAML classification spec file."""
    return parse_spec(read_spec_data(path), path.resolve().parent)


def check_credentials(spec: RunSpec | DialogueRunSpec) -> None:
    """Fail early, naming the variable or field, when a remote teacher cannot be reached as configured."""
    if isinstance(spec.teacher, RemoteTeacher):
        try:
            resolve_endpoint(spec.teacher)
        except EndpointError as exc:
            raise SpecError([str(exc)]) from None
