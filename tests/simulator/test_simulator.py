"""The teacher simulator over real loopback HTTP: protocol, pool semantics, every knob, the CLI."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import typer
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError
from sklearn.feature_extraction.text import TfidfVectorizer
from typer.testing import CliRunner

from agent.cli_simulate import simulate
from generators.brief import BRIEF_FIELD, brief_body
from simulator import SimulatorConfig, SimulatorServer
from simulator.actions import REFUSALS
from simulator.config import SimulatorKnobs, describe
from simulator.pool import PoolIndex, load_pool
from simulator.registry import ACTIONS, ActionContext

MakeSim = Callable[..., SimulatorServer]
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
REPO = Path(__file__).resolve().parents[2]
TINY_POOL = REPO / "tests" / "fixtures" / "tiny_pool.jsonl"
POOL = load_pool(TINY_POOL)


def texts_of(label: str) -> list[str]:
    return [item.text for item in POOL if item.label == label]


# The prompt a real teacher would read; the simulator reads the brief, which travels beside it in the body.
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You write training data."},
    {"role": "user", "content": "Write the examples described in the request."},
]


def post(server: SimulatorServer, brief: dict[str, Any] | None, key: str | None = None, **body: Any) -> httpx.Response:
    payload = {"model": "sim-teacher", "messages": MESSAGES, **({BRIEF_FIELD: brief} if brief else {}), **body}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + "/chat/completions", json=payload, headers=headers, timeout=10, trust_env=False)


def content(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = json.loads(response.json()["choices"][0]["message"]["content"])
    return result


def generate(server: SimulatorServer, label: str, n: int, **brief: Any) -> list[str]:
    examples = content(post(server, {"action": "generate", "label": label, "n": n, **brief}))["examples"]
    assert all(e["label"] == label for e in examples)
    return [e["text"] for e in examples]


def label_texts(server: SimulatorServer, texts: list[str]) -> list[str]:
    answer = content(post(server, {"action": "label", "labels": LABELS, "texts": texts}))["labels"]
    assert [a["index"] for a in answer] == list(range(len(texts)))
    return [a["label"] for a in answer]


def client(server: SimulatorServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=kwargs.pop("api_key", "x"), max_retries=0, **kwargs)


# ---------------------------------------------------------------------------------------------- protocol


def test_models_lists_the_configured_model(make_simulator: MakeSim) -> None:
    server = make_simulator(model="my-teacher")
    assert [m.id for m in client(server).models.list()] == ["my-teacher"]


def test_chat_completion_through_the_sdk_has_openai_shape_and_usage(simulator: SimulatorServer) -> None:
    brief = {"action": "generate", "label": "card_arrival", "n": 3}
    reply = client(simulator).chat.completions.create(
        model="sim-teacher",
        messages=MESSAGES,
        temperature=0.9,
        seed=1,
        response_format={"type": "json_object"},
        extra_body=brief_body(brief),
    )
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason == "stop"
    text = reply.choices[0].message.content or ""
    assert len(json.loads(text)["examples"]) == 3
    prompt_chars = sum(len(str(m.get("content"))) for m in MESSAGES)  # the out-of-band brief is not billed
    assert reply.usage is not None and reply.usage.prompt_tokens == -(-prompt_chars // 4)
    assert reply.usage.completion_tokens == -(-len(text) // 4)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_generate_serves_unused_items_of_the_label_until_exhausted(simulator: SimulatorServer) -> None:
    pool = set(texts_of("card_arrival"))
    batches = [generate(simulator, "card_arrival", 8) for _ in range(5)]
    assert [len(b) for b in batches] == [8, 8, 8, 6, 0]
    served = [t for batch in batches for t in batch]
    assert len(set(served)) == len(served) == 30 and set(served) == pool
    assert len(generate(simulator, "exchange_rate", 4)) == 4  # other labels are untouched
    assert simulator.stats()["items_served"] == 34


def test_like_and_avoid_texts_are_never_served_as_pool_items(simulator: SimulatorServer) -> None:
    pool = texts_of("exchange_rate")
    served = generate(simulator, "exchange_rate", 30, like=pool[:10], avoid=pool[10:29])
    assert served == [pool[29]]


def _similarity(texts: list[str], like: str) -> float:
    vectorizer = TfidfVectorizer().fit([item.text for item in POOL])
    return float((vectorizer.transform(texts) @ vectorizer.transform([like]).T).toarray().mean())


def test_like_prefers_the_neighbourhood_but_keeps_diversity(make_simulator: MakeSim) -> None:
    like, n, width = "Someone stole my card and my wallet", 3, 2
    near, seen = [], set()
    for seed in range(6):
        texts = generate(make_simulator(seed=seed, diversity_width=width), "lost_or_stolen_card", n, like=[like])
        near.append(_similarity(texts, like))
        seen.update(texts)
    uniform = _similarity(texts_of("lost_or_stolen_card"), like)  # the expected value of a uniform draw
    assert np.mean(near) > uniform + 0.1
    assert n < len(seen) <= width * n  # sampled from the top width×n, not just the n nearest


def test_length_attribute_prefers_short_or_long_items(simulator: SimulatorServer) -> None:
    lengths = sorted(len(t) for t in texts_of("exchange_rate"))
    median = float(np.median(lengths))
    short = generate(simulator, "exchange_rate", 5, attributes={"length": "short", "register": "casual"})
    long = generate(simulator, "exchange_rate", 5, attributes={"length": "long"})
    assert all(len(t) < median for t in short) and all(len(t) > median for t in long)


def test_label_returns_gold_labels_and_nearest_for_unknown_text(simulator: SimulatorServer) -> None:
    picked = [POOL[i] for i in (0, 1, 35, 36, 70, 71)]
    texts = [f"  {item.text.upper()} " for item in picked]  # case and whitespace do not matter
    assert label_texts(simulator, texts) == [item.label for item in picked]
    assert label_texts(simulator, ["what rate do you use to convert my pounds to euros"]) == ["exchange_rate"]


def test_labelled_pool_items_are_never_generated(simulator: SimulatorServer) -> None:
    labelled = texts_of("card_arrival")[:5]
    label_texts(simulator, labelled)
    served = generate(simulator, "card_arrival", 100)
    assert len(served) == 25 and not set(served) & set(labelled)


def test_new_actions_plug_into_the_registry() -> None:
    def echo(brief: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"echo": brief["say"], "pool_size": len(ctx.index)}

    with SimulatorServer(SimulatorConfig(), TINY_POOL, actions={**ACTIONS, "echo": echo}) as server:
        assert content(post(server, {"action": "echo", "say": "hi"})) == {"echo": "hi", "pool_size": 90}
        assert len(generate(server, "card_arrival", 1)) == 1  # the built-in actions still answer
    assert "echo" not in ACTIONS


# ---------------------------------------------------------------------------------------------- errors


def test_bad_requests_get_400_with_an_openai_error_body(simulator: SimulatorServer) -> None:
    cases: list[tuple[dict[str, Any] | None, dict[str, Any], str]] = [
        (None, {}, "missing_brief"),
        ({"action": "generate", "label": "no_such_label", "n": 2}, {}, "unknown_label"),
        ({"action": "dance"}, {}, "unknown_action"),
        ({"action": "generate", "label": "card_arrival", "n": -1}, {}, "invalid_brief"),
        ({"action": "generate", "label": "card_arrival", "n": 1}, {"stream": True}, "unsupported_parameter"),
        ({"action": "generate", "label": "card_arrival", "n": 1}, {"n": 2}, "unsupported_parameter"),
    ]
    for brief, extra, code in cases:
        response = post(simulator, brief, **extra)
        assert response.status_code == 400, (brief, extra)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == code and error["message"]
    assert simulator.stats()["outcomes"]["400"] == len(cases)
    missing = httpx.get(simulator.base_url + "/embeddings", trust_env=False)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    with pytest.raises(openai.BadRequestError, match="no_such_label"):
        unknown_label = brief_body({"action": "generate", "label": "no_such_label", "n": 1})
        client(simulator).chat.completions.create(model="m", messages=MESSAGES, extra_body=unknown_label)


def test_the_brief_is_read_from_the_body_only(simulator: SimulatorServer) -> None:
    prompt_brief = '```brief\n{"action": "generate", "label": "card_arrival", "n": 1}\n```'
    in_prompt: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Follow the brief.\n\n" + prompt_brief}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": in_prompt}, "missing_brief"),  # the old in-prompt brief is prose now: never parsed
        ({"messages": MESSAGES, BRIEF_FIELD: "generate"}, "invalid_brief"),
        ({"messages": MESSAGES, BRIEF_FIELD: {"action": 3}}, "invalid_brief"),
    ]
    for extra, code in cases:
        response = httpx.post(simulator.base_url + "/chat/completions", json={"model": "m", **extra}, trust_env=False)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, extra
        assert BRIEF_FIELD in response.json()["error"]["message"]
    reply = client(simulator).chat.completions.create(
        model="m", messages=in_prompt, extra_body=brief_body({"action": "label", "labels": LABELS, "texts": ["hi"]})
    )
    assert json.loads(reply.choices[0].message.content or "")["labels"][0]["index"] == 0


def test_api_key_is_required_when_configured(make_simulator: MakeSim) -> None:
    server = make_simulator(api_key="sk-secret")
    brief = {"action": "generate", "label": "card_arrival", "n": 1}
    for response in (post(server, brief), post(server, brief, key="sk-wrong")):
        assert response.status_code == 401 and "sk-wrong" not in response.text
    assert post(server, brief, key="sk-secret").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="nope").models.list()
    assert [m.id for m in client(server, api_key="sk-secret").models.list()] == ["sim-teacher"]
    assert server.stats()["outcomes"]["401"] == 2


# ---------------------------------------------------------------------------------------------- faults


def test_scripted_outcomes_are_served_in_order(simulator: SimulatorServer) -> None:
    simulator.script(["429", "500", "503", "malformed", "truncated", "ok"])
    brief = {"action": "generate", "label": "card_arrival", "n": 4}
    r429, r500, r503, bad, cut, ok = (post(simulator, brief) for _ in range(6))
    assert r429.status_code == 429 and r429.headers["Retry-After"] == "1"
    assert r429.json()["error"]["code"] == "rate_limit_exceeded"
    assert (r500.status_code, r503.status_code) == (500, 503) and r503.json()["error"]["type"] == "server_error"
    for broken in (bad, cut):
        with pytest.raises(json.JSONDecodeError):
            json.loads(broken.json()["choices"][0]["message"]["content"])
    assert bad.json()["choices"][0]["finish_reason"] == "stop"
    assert cut.json()["choices"][0]["finish_reason"] == "length"
    assert len(content(ok)["examples"]) == 4
    stats = simulator.stats()
    assert stats["requests"] == 6 and stats["scripted_pending"] == 0
    assert stats["outcomes"] == {
        "ok": 1,
        "429": 1,
        "5xx": 2,
        "hang": 0,
        "malformed": 1,
        "truncated": 1,
        "400": 0,
        "401": 0,
    }
    assert stats["actions"] == {"generate": 3}  # faults answered before the brief was read do not count


def test_retry_after_follows_the_knob_and_the_sdk_raises_typed_errors(make_simulator: MakeSim) -> None:
    server = make_simulator(retry_after_s=2.5)
    server.script(["429", "503"])
    sdk = client(server)
    brief = brief_body({"action": "generate", "label": "card_arrival", "n": 1})
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="m", messages=MESSAGES, extra_body=brief)
    assert caught.value.response.headers["retry-after"] == "2.5"
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="m", messages=MESSAGES, extra_body=brief)


def test_unknown_scripted_outcome_is_rejected(simulator: SimulatorServer) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        simulator.script(["explode"])


def test_random_fault_rates_apply(make_simulator: MakeSim) -> None:
    server = make_simulator(rate_5xx=1.0)
    codes = {post(server, {"action": "generate", "label": "card_arrival", "n": 1}).status_code for _ in range(12)}
    assert codes == {500, 503}
    server = make_simulator(rate_429=0.5, seed=3)
    codes_list = [post(server, {"action": "generate", "label": "exchange_rate", "n": 1}).status_code for _ in range(20)]
    assert 3 <= codes_list.count(429) <= 17 and set(codes_list) == {200, 429}


def test_a_hang_outlasts_the_client_timeout_then_answers(make_simulator: MakeSim) -> None:
    server = make_simulator(hang_s=0.6)
    server.script(["hang", "hang"])
    brief = {"action": "generate", "label": "card_arrival", "n": 2}
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES, extra_body=brief_body(brief))
    started = time.monotonic()
    assert len(content(post(server, brief))["examples"]) == 2
    assert time.monotonic() - started >= 0.55
    stats = server.stats()
    assert stats["outcomes"]["hang"] == 2 and stats["items_served"] == 2  # the abandoned hang drew nothing


def test_stop_does_not_wait_for_a_hanging_request(make_simulator: MakeSim) -> None:
    server = make_simulator(hang_s=30)
    server.script(["hang"])
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(
            post(server, {"action": "generate", "label": "card_arrival", "n": 1}).status_code
        )
    )
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=5)
    assert time.monotonic() - started < 3 and statuses == [503]


def test_latency_is_added_without_blocking_other_requests(make_simulator: MakeSim) -> None:
    server = make_simulator(latency_ms=200, jitter_ms=10)

    async def main() -> float:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=10, trust_env=False) as http:

            async def worker(i: int) -> None:
                for _ in range(4):
                    brief = {"action": "label", "labels": LABELS, "texts": [POOL[i].text]}
                    payload = {"model": "m", "messages": MESSAGES, BRIEF_FIELD: brief}
                    response = await http.post("/chat/completions", json=payload)
                    assert response.status_code == 200

            started = time.monotonic()
            await asyncio.gather(*(worker(i) for i in range(32)))
            return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert 0.75 <= elapsed < 2.5  # 4 sequential rounds of ~0.2 s; serial serving would take 25 s
    assert server.stats()["requests"] == 128


# ---------------------------------------------------------------------------------------------- content knobs


def test_copy_rate_echoes_like_texts(make_simulator: MakeSim) -> None:
    like = ["my card has still not arrived, where is it??", "card not here yet"]
    server = make_simulator(copy_rate=1.0)
    assert set(generate(server, "card_arrival", 6, like=like)) <= set(like)
    assert server.stats()["injected"]["copy"] == 6


def test_label_noise_answers_the_confusable_class(make_simulator: MakeSim) -> None:
    server = make_simulator(label_noise=1.0)
    texts = [item.text for item in POOL[::10]]
    answers = label_texts(server, texts)
    gold = [item.label for item in POOL[::10]]
    assert all(a != g and a in LABELS for a, g in zip(answers, gold, strict=True))


def test_label_noise_draws_generated_texts_from_another_class(make_simulator: MakeSim) -> None:
    server = make_simulator(label_noise=1.0)
    texts = generate(server, "exchange_rate", 5)  # labelled exchange_rate, but written for another class
    assert len(texts) == 5 and not set(texts) & set(texts_of("exchange_rate"))
    assert set(texts) <= {item.text for item in POOL}


def test_dup_rate_repeats_earlier_items(make_simulator: MakeSim) -> None:
    server = make_simulator(dup_rate=1.0)
    first = generate(server, "card_arrival", 4)  # nothing served yet: nothing to duplicate
    second = generate(server, "card_arrival", 4)
    assert len(set(first)) == 4 and set(second) <= set(first)
    assert server.stats()["injected"]["dup"] == 4


def test_refusal_rate_returns_refusals(make_simulator: MakeSim) -> None:
    server = make_simulator(refusal_rate=1.0)
    texts = generate(server, "exchange_rate", 3)
    assert len(texts) == 3 and set(texts) <= set(REFUSALS)
    assert server.stats()["items_served"] == 0


# ---------------------------------------------------------------------------------------------- stats, config, pool


def test_stats_count_requests_by_outcome_and_action_and_reset(simulator: SimulatorServer) -> None:
    generate(simulator, "card_arrival", 2)
    label_texts(simulator, ["hello"])
    post(simulator, None)
    stats = simulator.stats()
    assert stats["requests"] == 3 == sum(stats["outcomes"].values())
    assert stats["actions"] == {"generate": 1, "label": 1} and stats["status_codes"] == {"200": 2, "400": 1}
    assert stats["pool"] == {"size": 90, "used": 2}
    after = simulator.reset_stats()
    assert after["requests"] == 0 and after["items_served"] == 0 and after["pool"]["used"] == 2


@pytest.mark.parametrize(
    ("knobs", "problem"),
    [
        ({"rate_429": 1.5}, "rate_429: Input should be less than or equal to 1, got 1.5"),
        ({"latency_ms": -1}, "latency_ms: Input should be greater than or equal to 0, got -1"),
        ({"latency_ms": True}, "latency_ms: Input should be a valid number, got True"),
        ({"hang_s": float("inf")}, "hang_s: Input should be a finite number, got inf"),
        (
            {"rate_429": 0.6, "rate_5xx": 0.6},
            "rate_429 + rate_5xx + rate_hang + rate_malformed + rate_truncated "
            "must sum to at most 1 (one fault per request), got 1.2",
        ),
        ({"diversity_width": 0}, "diversity_width: Input should be greater than or equal to 1, got 0"),
        ({"seed": "3"}, "seed: Input should be a valid integer, got '3'"),
        (
            {"profile": "gpt"},
            "profile: must be one of openai-reasoning, openai-chat, anthropic, vllm, ollama or unset, got 'gpt'",
        ),
        ({"latency": 5}, "latency: Extra inputs are not permitted, got 5"),
        ({"model": " "}, "model: must be a non-empty string"),
    ],
)
def test_config_validation_names_the_field_and_range(knobs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SimulatorConfig(**knobs)
    assert describe(caught.value) == [problem]


def test_knobs_are_the_config_without_the_server_settings() -> None:
    """One definition: the server config extends the knob model a spec and the CLI validate against."""
    assert SimulatorConfig(profile="vllm").profile == "vllm"
    assert set(SimulatorConfig.model_fields) - set(SimulatorKnobs.model_fields) == {"model", "api_key", "policy_path"}
    assert all(field.description for field in SimulatorConfig.model_fields.values())
    assert "sk-secret" not in repr(SimulatorConfig(api_key="sk-secret"))


def test_request_vectors_match_the_fitted_pool_matrix() -> None:
    index = PoolIndex(POOL)
    fresh = index.vectorize([item.text for item in POOL])
    assert abs(fresh - index.matrix).max() < 1e-5  # the lean transform equals scikit-learn's
    assert index.confusable["exchange_rate"] != "exchange_rate"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not valid JSON"),
        ('{"text": "hi"}', "'label' must be a non-empty string"),
        ('{"text": "", "label": "x"}', "'text' must be a non-empty string"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_pool_loader_names_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text('{"text": "fine", "label": "a"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: {problem}")):
        load_pool(path)


# ---------------------------------------------------------------------------------------------- CLI

_CLI = "import typer; from agent.cli_simulate import simulate; app = typer.Typer(); app.command()(simulate); app()"


def test_cli_serves_and_exits_zero_on_sigterm() -> None:
    env = {**os.environ, "SIM_TEST_KEY": "sk-cli"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, "--pool", str(TINY_POOL), "--api-key-env", "SIM_TEST_KEY"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no URL line within 30 s"
        match = re.fullmatch(r"distill simulator listening on (http://127\.0\.0\.1:\d+/v1)\n", proc.stdout.readline())
        assert match
        sdk = openai.OpenAI(base_url=match[1], api_key="sk-cli", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["sim-teacher"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == ""  # exactly one line of output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _invoke(*args: str) -> Any:
    app = typer.Typer()
    app.command()(simulate)
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--rate-429", "2"], "--rate-429: Input should be less than or equal to 1, got 2.0"),
        (["--diversity-width", "0"], "--diversity-width: Input should be greater than or equal to 1, got 0"),
        (
            ["--profile", "bedrock"],
            "--profile: must be one of openai-reasoning, openai-chat, anthropic, vllm, ollama or unset, got 'bedrock'",
        ),
        (
            ["--rate-5xx", "0.7", "--rate-hang", "0.7"],
            "rate_429 + rate_5xx + rate_hang + rate_malformed + "
            "rate_truncated must sum to at most 1 (one fault per request), got 1.4",
        ),
        (["--model", " "], "model: must be a non-empty string"),
    ],
)
def test_cli_rejects_a_bad_knob_with_exit_code_2(args: list[str], problem: str) -> None:
    result = _invoke("--pool", str(TINY_POOL), *args)
    assert (result.exit_code, result.output) == (2, f"error: {problem}\n")


def test_cli_rejects_a_missing_pool_with_exit_code_2(tmp_path: Path) -> None:
    result = _invoke("--pool", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "--pool" in result.output and "nope.jsonl" in result.output


def test_cli_rejects_a_bad_pool_line_naming_file_and_line(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "fine", "label": "a"}\nnot json\n')
    result = _invoke("--pool", str(pool))
    assert result.exit_code == 2 and f"{pool}:2: not valid JSON" in " ".join(result.output.split())


def test_cli_options_are_derived_from_the_knob_model() -> None:
    """Every knob is an option with the knob's default and description as its help; nothing else is a knob."""
    result = _invoke("--help")
    assert result.exit_code == 0
    for option in ("--pool", "--rate-429", "--label-noise", "--diversity-width", "--api-key-env", "--profile"):
        assert option in result.output
    app = typer.Typer(add_completion=False)
    app.command()(simulate)
    params = typer.main.get_command(app).params
    options = {param.name: param for param in params if isinstance(param, typer.core.TyperOption)}
    assert len(options) == len(params)  # every parameter is an --option, none a positional argument
    assert set(options) == {*SimulatorKnobs.model_fields, "pool", "port", "host", "model", "policy_path", "api_key_env"}
    parameters = inspect.signature(simulate).parameters
    for name, field in SimulatorKnobs.model_fields.items():
        assert parameters[name].default == field.default == options[name].default, name
        assert options[name].help == field.description, name
    assert options["model"].default == SimulatorConfig.model_fields["model"].default


def test_cli_without_the_plugin_says_how_to_install_it() -> None:
    """No 'simulator' entry point (e.g. the package was never installed): one line with the fix, exit 1."""
    hide = "import importlib.metadata as m; m.entry_points = lambda **kw: m.EntryPoints(()); "
    proc = subprocess.run(
        [sys.executable, "-c", hide + _CLI, "--pool", str(TINY_POOL)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert " ".join(proc.stderr.split()) == (  # rich may wrap the line
        "error: teacher server 'simulator' is not installed (no 'simulator' entry point in group "
        "distill.teacher_servers) — run `pip install -e .` in the distill checkout, which registers the simulator"
    )


def test_building_the_cli_loads_no_server_and_no_torch() -> None:
    """`distill --help` builds every command's options; the simulate options must not load the server side."""
    code = (
        "import sys, typer; from typer.testing import CliRunner; from agent.cli_simulate import simulate; "
        "app = typer.Typer(); app.command()(simulate); assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
        "print(sorted(m for m in ('torch', 'uvicorn', 'starlette', 'sklearn', 'simulator.server') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr
