"""Strategy teaching in the simulator: the policy loader, and the scenario/respond/judge/strategize/guidelines
actions over real loopback HTTP through the openai SDK, with the shipped retail-support policy and pool."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import openai
import pytest
import typer
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from agent.cli_simulate import simulate
from generators.brief import brief_body
from generators.prompts import get_template
from generators.schemas import Guidelines, JudgeVerdict, Reply, Scenarios, Strategies
from generators.service_policy import Policy, PolicyError, PolicyLookupError
from simulator import SimulatorConfig, SimulatorServer
from simulator.pool import load_pool

MakeSim = Callable[..., SimulatorServer]
SUPPORT = Path(__file__).resolve().parents[2] / "examples" / "support"
POLICY_PATH = SUPPORT / "policy.yaml"
POOL_PATH = SUPPORT / "customer_messages.jsonl"
POLICY = Policy.load(POLICY_PATH)
POOL = load_pool(POOL_PATH)
MODELS: dict[str, type[BaseModel]] = {
    "scenario": Scenarios,
    "respond": Reply,
    "judge": JudgeVerdict,
    "strategize": Strategies,
    "guidelines": Guidelines,
}


@pytest.fixture
def support(make_simulator: MakeSim) -> SimulatorServer:
    """A simulator with the support pool and policy."""
    return make_simulator(POOL_PATH, policy_path=str(POLICY_PATH))


def ask(server: SimulatorServer, brief: dict[str, Any], **variables: str) -> dict[str, Any]:
    """Render the action's real template, send it through the SDK, and check the reply's shape both ways."""
    template = get_template(brief["action"])
    filled = {name: variables.get(name, f"<{name}>") for name in template.variables}
    sdk = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    response_format = {"type": "json_schema", "json_schema": {"name": template.id, "schema": template.output_schema}}
    completion = sdk.chat.completions.create(
        model="sim-teacher",
        messages=cast(Any, template.render(filled)),
        response_format=cast(Any, response_format),
        extra_body=brief_body(brief),
    )
    reply: dict[str, Any] = json.loads(completion.choices[0].message.content or "")
    MODELS[template.id].model_validate(reply)
    assert_matches_schema(reply, template.output_schema)
    return reply


def assert_matches_schema(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema our templates use (no jsonschema package in the environment)."""
    types = schema.get("type")
    allowed = types if isinstance(types, list) else [types] if types else []
    python: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "number": (int, float),
        "integer": int,
        "null": type(None),
        "boolean": bool,
    }
    assert not allowed or any(isinstance(value, python[t]) for t in allowed), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value), where
    if isinstance(value, dict):
        assert set(schema.get("required", [])) <= value.keys(), f"{where}: missing {schema.get('required')}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert value.keys() <= properties.keys(), f"{where}: extra keys {value.keys() - properties.keys()}"
        for key, item in value.items():
            if key in properties:
                assert_matches_schema(item, properties[key], f"{where}.{key}")
    if isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)), where
        for i, item in enumerate(value):
            assert_matches_schema(item, schema.get("items", {}), f"{where}[{i}]")


def rejected(server: SimulatorServer, brief: dict[str, Any]) -> str:
    """The message of the 400 the simulator answers to ``brief``."""
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server, brief)
    return caught.value.message


# ---------------------------------------------------------------------------------------------- the policy


def test_policy_judge_is_deterministic_and_names_violations() -> None:
    assert POLICY.flow_ids == ["refund", "order_change", "delivery", "shipping_address", "account", "billing"]
    assert POLICY.flow_for_intent("get_refund") == "refund" and POLICY.has_flow("billing")
    assert POLICY.flow_for_intent("complaint") is None
    assert [c.id for c in POLICY.criteria("refund")] == [
        "acknowledge",
        "no_false_promise",
        "pull_up_account",
        "validate_purchase",
        "refund_method",
    ]
    for flow in POLICY.flow_ids:
        assert POLICY.judge(flow, POLICY.reference_reply(flow)).score == 1.0, flow
    verdict = POLICY.judge("refund", "ok")
    assert verdict.failed == ["acknowledge", "pull_up_account", "validate_purchase", "refund_method"]
    assert verdict.score == pytest.approx(1 / 5) and "misses acknowledge" in verdict.rationale
    assert "full name" in verdict.violations["pull_up_account"]
    # Curly apostrophes and line breaks do not change the verdict; a promise is caught wherever it is.
    good = (
        "I\u2019m sorry about that! Could you give me your full\nname and the order ID? Would you like a "
        "gift card or account credit?"
    )
    assert POLICY.judge("refund", good).score == 1.0
    promised = POLICY.judge("refund", good + " I guarantee it will be fine.")
    assert promised.failed == ["no_false_promise"] and "'guarantee'" in promised.violations["no_false_promise"]
    assert POLICY.judge("refund", good).to_dict() == POLICY.judge("refund", good).to_dict()
    with pytest.raises(PolicyLookupError, match=r"unknown flow 'nope'.*refund"):
        POLICY.judge("nope", "ok")


def _policy_dict(**criterion: Any) -> dict[str, Any]:
    base = {
        "id": "c1",
        "requirement": "Say sorry.",
        "check": {"any": ["sorry"]},
        "strategy": "Say sorry.",
        "reference": "Sorry!",
    }
    return {
        "id": "p",
        "version": 1,
        "flows": [{"id": "f1", "description": "d", "intents": ["a"], "criteria": [{**base, **criterion}]}],
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"check": None}, r"flow 'f1', criterion 'c1': 'check' is required"),
        ({"check": {"any": ["(unclosed"]}}, r"flow 'f1', criterion 'c1': check\.any\[0\]: '\(unclosed' is not a valid"),
        ({"check": {"some": ["x"]}}, r"flow 'f1', criterion 'c1': check: unknown key\(s\) \['some'\]"),
        ({"reference": "Hello."}, r"flow 'f1', criterion 'c1': its reference fails its own check"),
        ({"strategy": ""}, r"flow 'f1', criterion 'c1': 'strategy' must be a non-empty string"),
    ],
)
def test_policy_validation_names_the_flow_and_criterion(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    data = _policy_dict(**change)
    if change.get("check", "") is None:
        del data["flows"][0]["criteria"][0]["check"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match=message):
        Policy.load(path)
    with pytest.raises(ValueError, match=message):  # and the simulator refuses to start with it
        SimulatorConfig(policy_path=str(path))


def test_policy_consistency_rules() -> None:
    data = _policy_dict()
    data["flows"].append({**data["flows"][0], "id": "f2"})
    with pytest.raises(PolicyError, match="intent 'a' is in flows 'f1' and 'f2'"):
        Policy.from_dict(data)
    data["flows"][1]["intents"] = ["b"]
    data["flows"][1]["criteria"] = [{**data["flows"][0]["criteria"][0], "requirement": "Other."}]
    with pytest.raises(PolicyError, match="flow 'f2', criterion 'c1' differs from the criterion of the same id"):
        Policy.from_dict(data)
    with pytest.raises(ValueError, match=r"policy_path\n  Value error, no such file: /no/such/policy\.yaml"):
        SimulatorConfig(policy_path="/no/such/policy.yaml")


# ---------------------------------------------------------------------------------------------- respond, judge


def test_reference_reply_passes_the_judge_for_every_flow(support: SimulatorServer) -> None:
    for flow in POLICY.flow_ids:
        message = next(item.text for item in POOL if POLICY.intents.get(item.label) == flow)
        reply = ask(
            support,
            {"action": "respond", "flow": flow, "message": message},
            flow=flow,
            rubric=POLICY.rubric_text(flow),
            message=message,
        )["reply"]
        verdict = ask(
            support,
            {"action": "judge", "flow": flow, "message": message, "reply": reply},
            rubric=POLICY.rubric_text(flow),
            message=message,
            reply=reply,
        )
        assert verdict["score"] == 1.0 and all(
            c["score"] == 1 and c["violation"] is None for c in verdict["criteria"]
        ), (flow, verdict)
        assert [c["id"] for c in verdict["criteria"]] == [c.id for c in POLICY.criteria(flow)]


def test_a_bad_reply_fails_the_flow_criteria_with_violations(support: SimulatorServer) -> None:
    for flow in POLICY.flow_ids:
        verdict = ask(support, {"action": "judge", "flow": flow, "message": "help", "reply": "ok"})
        assert verdict == POLICY.judge(flow, "ok").to_dict()
        failed = {c["id"]: c["violation"] for c in verdict["criteria"] if c["score"] == 0}
        assert {c.id for c in POLICY.flow(flow).criteria} <= failed.keys()
        assert all(failed.values()) and verdict["score"] < 0.5
        assert all(cid in verdict["rationale"] for cid in failed)


def test_the_judge_is_reproducible_across_calls_and_seeds(make_simulator: MakeSim) -> None:
    brief = {
        "action": "judge",
        "flow": "order_change",
        "message": "I want to cancel my order",
        "reply": "Sorry to hear that! Please send your order number. I definitely can cancel it.",
    }
    verdicts = [
        ask(make_simulator(POOL_PATH, policy_path=str(POLICY_PATH), seed=seed), brief)
        for seed in (0, 7)
        for _ in range(2)
    ]
    assert all(v == verdicts[0] for v in verdicts)
    assert [c["id"] for c in verdicts[0]["criteria"] if not c["score"]] == [
        "no_false_promise",
        "check_shipped",
        "membership_level",
    ]


# ---------------------------------------------------------------------------------------------- strategize


def test_strategize_gives_one_strategy_per_failed_criterion(support: SimulatorServer) -> None:
    brief = {"action": "strategize", "flow": "billing", "message": "where is my invoice", "reply": "ok"}
    failed = POLICY.judge("billing", "ok").failed
    answer = ask(support, {**brief, "failed": failed}, rubric=POLICY.rubric_text("billing"))
    assert [s["criterion"] for s in answer["strategies"]] == failed
    assert [s["text"] for s in answer["strategies"]] == [POLICY.strategy("billing", c) for c in failed]
    assert ask(support, brief) == answer  # without "failed", the judge's failures
    assert ask(support, {**brief, "failed": []}) == {"strategies": []}
    assert "refund_method" in rejected(support, {**brief, "failed": ["refund_method"]})  # not a billing criterion


# ---------------------------------------------------------------------------------------------- scenario


def test_scenarios_respect_flows_and_never_repeat(support: SimulatorServer) -> None:
    pool_flow = {item.text: POLICY.intents[item.label] for item in POOL}
    refund_total = sum(1 for flow in pool_flow.values() if flow == "refund")
    served: list[str] = []
    for _ in range(4):
        batch = ask(support, {"action": "scenario", "flows": ["refund"], "n": 25, "target_criteria": []})
        assert all(s["flow"] == "refund" and pool_flow[s["message"]] == "refund" for s in batch["scenarios"])
        served += [s["message"] for s in batch["scenarios"]]
    assert len(served) == len(set(served)) == refund_total  # exhausted: later batches come back short
    rest = ask(support, {"action": "scenario", "flows": [], "n": 1000, "target_criteria": []})["scenarios"]
    assert len(rest) == len(POOL) - refund_total and not {s["message"] for s in rest} & set(served)
    assert all(pool_flow[s["message"]] == s["flow"] for s in rest)


def test_scenarios_prefer_flows_with_the_target_criteria(support: SimulatorServer) -> None:
    batch = ask(support, {"action": "scenario", "flows": [], "n": 8, "target_criteria": ["membership_level"]})
    assert {s["flow"] for s in batch["scenarios"]} == {"order_change"}
    mixed = ask(
        support, {"action": "scenario", "flows": ["delivery", "billing"], "n": 6, "target_criteria": ["acknowledge"]}
    )  # a general criterion: every flow qualifies
    assert Counter(s["flow"] for s in mixed["scenarios"]) == {"delivery": 3, "billing": 3}
    assert "no_such_criterion" in rejected(
        support, {"action": "scenario", "flows": [], "n": 1, "target_criteria": ["no_such_criterion"]}
    )


def test_scenarios_skip_intents_outside_the_policy(make_simulator: MakeSim, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    rows = [{"text": f"I want to complain about thing {i}", "label": "complaint"} for i in range(10)]
    rows += [{"text": f"where is my refund number {i}", "label": "track_refund"} for i in range(3)]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = make_simulator(pool, policy_path=str(POLICY_PATH))
    batch = ask(server, {"action": "scenario", "flows": [], "n": 50, "target_criteria": []})["scenarios"]
    assert sorted(s["message"] for s in batch) == [r["text"] for r in rows[10:]]


# ---------------------------------------------------------------------------------------------- guidelines


def test_guidelines_give_one_rule_per_pair_naming_both_labels(make_simulator: MakeSim) -> None:
    server = make_simulator(POOL_PATH)  # no policy needed
    pairs = [["get_refund", "track_refund"], ["cancel_order", "change_order"]]
    brief = {"action": "guidelines", "pairs": pairs, "descriptions": {"get_refund": "money back for an order"}}
    answer = ask(server, brief)
    assert [g["labels"] for g in answer["guidelines"]] == pairs
    for (a, b), rule in zip(pairs, answer["guidelines"], strict=True):
        assert f"'{a}'" in rule["text"] and f"'{b}'" in rule["text"] and "mentions" in rule["text"]
    assert "(money back for an order)" in answer["guidelines"][0]["text"]
    assert ask(server, brief) == answer  # deterministic
    assert "no_such_label" in rejected(server, {"action": "guidelines", "pairs": [["get_refund", "no_such_label"]]})


# ---------------------------------------------------------------------------------------------- errors, CLI


def test_dialogue_actions_need_a_policy(make_simulator: MakeSim) -> None:
    server = make_simulator(POOL_PATH)
    for brief in (
        {"action": "scenario", "flows": [], "n": 1, "target_criteria": []},
        {"action": "respond", "flow": "refund", "message": "m"},
        {"action": "judge", "flow": "refund", "message": "m", "reply": "r"},
        {"action": "strategize", "flow": "refund", "message": "m", "reply": "r", "failed": []},
    ):
        assert "without a policy" in rejected(server, brief)


def test_unknown_flows_are_rejected_with_the_known_ones(support: SimulatorServer) -> None:
    for brief in (
        {"action": "respond", "flow": "nope", "message": "m"},
        {"action": "judge", "flow": "nope", "message": "m", "reply": "r"},
        {"action": "scenario", "flows": ["nope"], "n": 1, "target_criteria": []},
    ):
        message = rejected(support, brief)
        assert "unknown flow 'nope'" in message and "billing" in message


def test_cli_policy_option() -> None:
    runner = CliRunner()
    app = typer.Typer()
    app.command()(simulate)
    assert "--policy" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["--pool", str(POOL_PATH), "--policy", "/no/such/policy.yaml"])
    assert result.exit_code == 2 and "--policy" in result.output
