"""Policy files for strategy teaching (DESIGN §7): flows of customer intents, with checkable criteria.

A policy is a YAML file::

    id: retail-support
    version: 1
    attribution: "..."
    general:                      # criteria that apply to every flow
      - {id, requirement, check, strategy, reference}
    flows:
      - id: refund
        description: "the customer wants money back for an order"
        intents: [get_refund, track_refund]
        criteria: [{id, requirement, check, strategy, reference}, ...]

A ``check`` holds case-insensitive regexes: ``any`` (at least one must match), ``all`` (every one must
match), ``none`` (none may match); when several keys are given, all of them must hold. Judging a reply
is therefore deterministic: the same reply always gets the same verdict, whoever asks and whenever.

The teacher simulator uses a policy to play scenario writer, reference answerer, judge and strategist;
the agent uses it to render the rubric into prompts for a real teacher. Pure Python (yaml + re).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHECK_KINDS = ("any", "all", "none")
_CRITERION_KEYS = frozenset({"id", "requirement", "check", "strategy", "reference"})
_FLOW_KEYS = frozenset({"id", "description", "intents", "criteria"})
_POLICY_KEYS = frozenset({"id", "version", "attribution", "general", "flows"})
_CURLY_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


class PolicyError(ValueError):
    """The policy file is malformed; the message names the file, flow and criterion at fault."""


class PolicyLookupError(LookupError):
    """An unknown flow, criterion or intent was asked for; the message lists the known ones."""


def normalise_reply(text: str) -> str:
    """Straight quotes and single spaces, so that a pattern like ``account id`` matches across line breaks."""
    return " ".join(text.translate(_CURLY_QUOTES).split())


# ---------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """Compiled regexes of one criterion (see the module docstring for the semantics)."""

    any: tuple[re.Pattern[str], ...] = ()
    all: tuple[re.Pattern[str], ...] = ()
    none: tuple[re.Pattern[str], ...] = ()

    @property
    def prohibits_only(self) -> bool:
        """True for a pure prohibition (only ``none``): any reply that avoids the words passes."""
        return not self.any and not self.all

    def violation(self, reply: str) -> str | None:
        """Why ``reply`` fails this check, or None when it passes (first failing key, in any/all/none order)."""
        text = normalise_reply(reply)
        if self.any and not any(p.search(text) for p in self.any):
            return f"mentions none of {_patterns(self.any)}"
        missing = [p for p in self.all if not p.search(text)]
        if missing:
            return f"lacks {_patterns(missing)}"
        for pattern in self.none:
            found = pattern.search(text)
            if found:
                return f"says {found.group(0)!r}, which the policy forbids"
        return None

    def to_dict(self) -> dict[str, list[str]]:
        """The regexes as written in the policy file (for rubric text and round trips)."""
        return {kind: [p.pattern for p in getattr(self, kind)] for kind in CHECK_KINDS if getattr(self, kind)}


def _patterns(patterns: Iterable[re.Pattern[str]]) -> str:
    return ", ".join(f"/{p.pattern}/" for p in patterns)


# ---------------------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict: score 1 (met) or 0 (not met, with the violation)."""

    id: str
    score: int
    violation: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "violation": self.violation}


@dataclass(frozen=True)
class Judgement:
    """A reply judged against a flow's criteria: per-criterion results, their mean, a rationale."""

    flow: str
    criteria: tuple[CriterionResult, ...]
    score: float
    rationale: str

    @property
    def failed(self) -> list[str]:
        """Ids of the criteria the reply did not meet, in rubric order."""
        return [c.id for c in self.criteria if not c.score]

    @property
    def violations(self) -> dict[str, str]:
        """Failed criterion id → what was wrong."""
        return {c.id: c.violation for c in self.criteria if c.violation is not None}

    def to_dict(self) -> dict[str, Any]:
        """The judge action's reply: ``{"criteria": [...], "score": float, "rationale": str}``."""
        return {"criteria": [c.to_dict() for c in self.criteria], "score": self.score, "rationale": self.rationale}


# ---------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Criterion:
    """One checkable requirement, with the strategy that teaches it and a reference phrase that meets it."""

    id: str
    requirement: str
    check: Check
    strategy: str
    reference: str

    def judge(self, reply: str) -> CriterionResult:
        problem = self.check.violation(reply)
        if problem is None:
            return CriterionResult(self.id, 1, None)
        return CriterionResult(self.id, 0, f"{self.requirement} The reply {problem}.")


@dataclass(frozen=True)
class Flow:
    """A group of customer intents that the same criteria apply to."""

    id: str
    description: str
    intents: tuple[str, ...]
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy. Build it with ``Policy.load(path)`` or ``Policy.from_dict(data)``."""

    id: str
    version: int
    attribution: str
    general: tuple[Criterion, ...]
    flows: tuple[Flow, ...]
    _by_flow: dict[str, Flow] = field(init=False, repr=False, compare=False)
    _by_intent: dict[str, Flow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_flow", {flow.id: flow for flow in self.flows})
        object.__setattr__(self, "_by_intent", {i: flow for flow in self.flows for i in flow.intents})

    @classmethod
    def load(cls, path: Path | str) -> Policy:
        """Read and validate a policy file; ``PolicyError`` names the file, flow and criterion at fault."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy") -> Policy:
        """Validate a parsed policy document (``source`` prefixes every error message)."""
        return _parse_policy(data, source)

    # -- lookups

    @property
    def flow_ids(self) -> list[str]:
        return [flow.id for flow in self.flows]

    @property
    def intents(self) -> dict[str, str]:
        """Every mapped intent → its flow id."""
        return {intent: flow.id for intent, flow in self._by_intent.items()}

    def flow(self, flow_id: str) -> Flow:
        """The flow with this id (``PolicyLookupError`` listing the known ones otherwise)."""
        try:
            return self._by_flow[flow_id]
        except KeyError:
            raise PolicyLookupError(
                f"unknown flow {flow_id!r}; the policy has flows: {', '.join(self.flow_ids)}"
            ) from None

    def has_flow(self, flow_id: str) -> bool:
        return flow_id in self._by_flow

    def flow_for_intent(self, intent: str) -> str | None:
        """The id of the flow that handles ``intent``, or None when the policy does not cover it."""
        flow = self._by_intent.get(intent)
        return None if flow is None else flow.id

    def criteria(self, flow_id: str) -> list[Criterion]:
        """The criteria a reply in ``flow_id`` is judged on: the general ones, then the flow's own."""
        return [*self.general, *self.flow(flow_id).criteria]

    def criterion(self, flow_id: str, criterion_id: str) -> Criterion:
        """One criterion of a flow (general ones included)."""
        for criterion in self.criteria(flow_id):
            if criterion.id == criterion_id:
                return criterion
        known = ", ".join(c.id for c in self.criteria(flow_id))
        raise PolicyLookupError(f"unknown criterion {criterion_id!r} for flow {flow_id!r}; its criteria: {known}")

    def criterion_ids(self) -> set[str]:
        """Every criterion id of the policy (general and per flow)."""
        return {c.id for c in self.general} | {c.id for flow in self.flows for c in flow.criteria}

    def flows_with(self, criterion_ids: Iterable[str]) -> list[str]:
        """Ids of the flows whose criteria include any of ``criterion_ids``, in policy order."""
        wanted = set(criterion_ids)
        return [flow.id for flow in self.flows if wanted & {c.id for c in self.criteria(flow.id)}]

    # -- the teacher's roles

    def judge(self, flow_id: str, reply: str) -> Judgement:
        """Judge ``reply`` against the flow's criteria: deterministic, a pure function of its inputs."""
        results = tuple(criterion.judge(reply) for criterion in self.criteria(flow_id))
        score = sum(r.score for r in results) / len(results)
        return Judgement(flow_id, results, score, _rationale(results, score))

    def reference_reply(self, flow_id: str) -> str:
        """The teacher's reference answer: every criterion's reference phrase, in conversational order.

        Positive general criteria (acknowledge) open the reply, the flow's own steps follow, and pure
        prohibitions (whose reference is a hedged closing line) end it.
        """
        opening = [c for c in self.general if not c.check.prohibits_only]
        closing = [c for c in self.general if c.check.prohibits_only]
        parts = [*opening, *self.flow(flow_id).criteria, *closing]
        return " ".join(c.reference.strip() for c in parts)

    def strategy(self, flow_id: str, criterion_id: str) -> str:
        """The short, transferable strategy that teaches one criterion of a flow."""
        return self.criterion(flow_id, criterion_id).strategy

    def rubric_text(self, flow_id: str) -> str:
        """The flow's criteria as numbered rubric text, for a real teacher's judge or strategize prompt."""
        lines = []
        for number, criterion in enumerate(self.criteria(flow_id), start=1):
            lines.append(f"{number}. [{criterion.id}] {criterion.requirement}")
        return "\n".join(lines)

    def flows_text(self) -> str:
        """One line per flow (id: description; intents), for a scenario-writing prompt."""
        return "\n".join(f"- {f.id}: {f.description} (intents: {', '.join(f.intents)})" for f in self.flows)


def _rationale(results: tuple[CriterionResult, ...], score: float) -> str:
    met = sum(r.score for r in results)
    failed = [r.id for r in results if not r.score]
    if not failed:
        return f"The reply meets all {len(results)} criteria (score {score:.2f})."
    return f"The reply meets {met} of {len(results)} criteria (score {score:.2f}); it misses {', '.join(failed)}."


# ---------------------------------------------------------------------------------------------- parsing


def _parse_policy(data: Any, source: str) -> Policy:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{source}: a policy must be a YAML mapping with id, version and flows")
    _no_unknown_keys(data, _POLICY_KEYS, source)
    policy_id = _text(data.get("id"), f"{source}: 'id'")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PolicyError(f"{source}: 'version' must be a positive integer, got {version!r}")
    attribution = data.get("attribution", "")
    if not isinstance(attribution, str):
        raise PolicyError(f"{source}: 'attribution' must be a string")
    general = _parse_criteria(data.get("general") or [], f"{source}: general")
    flows_data = data.get("flows")
    if not isinstance(flows_data, list) or not flows_data:
        raise PolicyError(f"{source}: 'flows' must be a non-empty list of flows")
    flows = tuple(_parse_flow(item, i, source) for i, item in enumerate(flows_data))
    _check_consistency(general, flows, source)
    return Policy(policy_id, version, attribution, general, flows)


def _parse_flow(data: Any, position: int, source: str) -> Flow:
    where = f"{source}: flows[{position}]"
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: a flow must be a mapping with id, description, intents and criteria")
    flow_id = _text(data.get("id"), f"{where}: 'id'")
    where = f"{source}: flow {flow_id!r}"
    _no_unknown_keys(data, _FLOW_KEYS, where)
    description = _text(data.get("description"), f"{where}: 'description'")
    intents = data.get("intents")
    if not isinstance(intents, list) or not intents or not all(isinstance(i, str) and i for i in intents):
        raise PolicyError(f"{where}: 'intents' must be a non-empty list of intent names")
    criteria = _parse_criteria(data.get("criteria"), where)
    if not criteria:
        raise PolicyError(f"{where}: 'criteria' must list at least one criterion")
    return Flow(flow_id, description, tuple(intents), criteria)


def _parse_criteria(data: Any, where: str) -> tuple[Criterion, ...]:
    if not isinstance(data, list):
        raise PolicyError(f"{where}: criteria must be a list")
    return tuple(_parse_criterion(item, i, where) for i, item in enumerate(data))


def _parse_criterion(data: Any, position: int, where: str) -> Criterion:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: criteria[{position}] must be a mapping")
    criterion_id = _text(data.get("id"), f"{where}: criteria[{position}] 'id'")
    where = f"{where}, criterion {criterion_id!r}"
    _no_unknown_keys(data, _CRITERION_KEYS, where)
    if "check" not in data:
        raise PolicyError(f"{where}: 'check' is required (a mapping of any/all/none regex lists)")
    criterion = Criterion(
        id=criterion_id,
        requirement=_text(data.get("requirement"), f"{where}: 'requirement'"),
        check=_parse_check(data["check"], where),
        strategy=_text(data.get("strategy"), f"{where}: 'strategy'"),
        reference=_text(data.get("reference"), f"{where}: 'reference'"),
    )
    # A reference that fails its own check would make the teacher's answer fail its own judge.
    problem = criterion.check.violation(criterion.reference)
    if problem is not None:
        raise PolicyError(f"{where}: its reference fails its own check: the reference {problem}")
    return criterion


def _parse_check(data: Any, where: str) -> Check:
    if not isinstance(data, Mapping) or not data:
        raise PolicyError(f"{where}: 'check' must be a mapping with at least one of {', '.join(CHECK_KINDS)}")
    _no_unknown_keys(data, frozenset(CHECK_KINDS), f"{where}: check")
    compiled: dict[str, tuple[re.Pattern[str], ...]] = {}
    for kind, patterns in data.items():
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise PolicyError(f"{where}: check.{kind} must be a non-empty list of regex strings")
        compiled[kind] = tuple(_compile(p, f"{where}: check.{kind}[{i}]") for i, p in enumerate(patterns))
    return Check(**compiled)


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise PolicyError(f"{where}: {pattern!r} is not a valid regex ({exc})") from exc


def _check_consistency(general: tuple[Criterion, ...], flows: tuple[Flow, ...], source: str) -> None:
    """Unique flow ids, one flow per intent, unique criteria per flow, one meaning per criterion id."""
    seen_flows: set[str] = set()
    owner: dict[str, str] = {}
    definitions: dict[str, tuple[str, Criterion]] = {c.id: ("general", c) for c in general}
    _unique_ids(general, f"{source}: general")
    for flow in flows:
        if flow.id in seen_flows:
            raise PolicyError(f"{source}: flow id {flow.id!r} is used twice")
        seen_flows.add(flow.id)
        for intent in flow.intents:
            if intent in owner:
                raise PolicyError(
                    f"{source}: intent {intent!r} is in flows {owner[intent]!r} and {flow.id!r}; "
                    "an intent belongs to one flow"
                )
            owner[intent] = flow.id
        _unique_ids((*general, *flow.criteria), f"{source}: flow {flow.id!r}")
        for criterion in flow.criteria:
            first = definitions.setdefault(criterion.id, (flow.id, criterion))
            # Strategies are filed by criterion id, so one id must mean one requirement everywhere.
            if first[1] != criterion:
                raise PolicyError(
                    f"{source}: flow {flow.id!r}, criterion {criterion.id!r} differs from the "
                    f"criterion of the same id in {first[0]!r}; use a YAML anchor or a new id"
                )


def _unique_ids(criteria: Iterable[Criterion], where: str) -> None:
    seen: set[str] = set()
    for criterion in criteria:
        if criterion.id in seen:
            raise PolicyError(f"{where}: criterion id {criterion.id!r} appears twice (general criteria count too)")
        seen.add(criterion.id)


def _no_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where} must be a non-empty string, got {value!r}")
    return value.strip()
