"""Classification as generation: label mapping (malformed outputs included) and constrained scoring on a
tiny Llama fine-tuned with the real TRL path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainers.causal_classifier import CausalClassifier, map_to_label
from trainers.causal_config import CausalLMConfig
from trainers.encoder import write_student_meta
from trainers.tiny_causal import build_tiny_causal_lm

LABELS = ["card", "card_arrival", "lost_or_stolen_card"]
TRAIN = [
    ("how do I activate my card", "card"),
    ("is my card a visa", "card"),
    ("my card never arrived", "card_arrival"),
    ("when will the new card come", "card_arrival"),
    ("someone stole my card", "lost_or_stolen_card"),
    ("I lost my card on the bus", "lost_or_stolen_card"),
]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("card_arrival", "card_arrival"),
        ("  Card Arrival.\n", "card_arrival"),
        ('"lost-or-stolen-card"', "lost_or_stolen_card"),
        ("Label: card_arrival", "card_arrival"),
        ("The answer is lost_or_stolen_card because", "lost_or_stolen_card"),
        ("card", "card"),
        ("card_arrivals", None),  # a made-up label is counted as unmappable, not snapped to the nearest
        ("", None),
        ("I cannot help with that", None),
        ("{'label': 42}", None),
        ("first line names nothing\ncard_arrival", None),  # only the first line is the answer
    ],
)
def test_map_to_label_maps_what_names_a_label_and_nothing_else(output: str, expected: str | None) -> None:
    assert map_to_label(output, LABELS) == expected


def test_two_labels_named_equally_are_not_guessed() -> None:
    assert map_to_label("card or visa", ["card", "visa"]) is None
    assert map_to_label("card_arrival or card", LABELS) is None
    assert map_to_label("it is about card arrival, I think", LABELS) == "card_arrival"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("causal")
    texts = [t for pair in TRAIN for t in pair] + LABELS
    lm = build_tiny_causal_lm(root / "lm", texts * 3, hidden_size=64)
    config = CausalLMConfig(base_model=lm, max_steps=80, batch_size=6, learning_rate=5e-3, seed=0)
    student = CausalClassifier.create(LABELS, config)
    stats = student.train([t for t, _ in TRAIN], [y for _, y in TRAIN])
    assert stats.final_loss is not None and stats.first_loss is not None and stats.final_loss < stats.first_loss
    student.save(root / "student", card={"round": 1})
    return root / "student"


def test_the_saved_student_is_a_plain_model_folder_with_the_encoders_metadata(trained: Path) -> None:
    from trainers.encoder import read_student_meta

    assert json.loads((trained / "labels.json").read_text()) == LABELS
    meta = read_student_meta(trained)
    assert meta["format"] == "distill-causal-lm-classifier" and meta["temperature"] == 1.0
    assert meta["config"]["max_steps"] == 80 and meta["card"] == {"round": 1}
    assert (trained / "config.json").is_file() and (trained / "model.safetensors").is_file()
    other = trained.parent / "other"
    other.mkdir()
    write_student_meta(other, {"format": "distill-encoder-classifier"})
    with pytest.raises(FileNotFoundError, match="not a distill causal-LM student"):
        CausalClassifier.load(other)


def test_constrained_scoring_answers_within_the_label_set_with_a_distribution(trained: Path) -> None:
    student = CausalClassifier.load(trained)
    student.batch_size = 2  # fewer than the labels: the answers after one prompt are scored in two passes
    texts = [text for text, _ in TRAIN]
    proba = student.predict_proba(texts)
    assert proba.shape == (len(TRAIN), len(LABELS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert [label for label, _ in student.predict(texts)] == [label for _, label in TRAIN]
    # "card" is a prefix of "card_arrival": scoring the end of turn keeps the shorter name from winning early
    logits = student.predict_logits(["my card never arrived"])
    assert logits[0, LABELS.index("card_arrival")] > logits[0, LABELS.index("card")]
    assert student.predict_proba([]).shape == (0, len(LABELS))


def test_the_shared_prompt_cache_scores_exactly_as_each_prompt_and_answer_in_full(trained: Path) -> None:
    import torch

    from trainers.causal_classifier import classification_prompt

    student = CausalClassifier.load(trained)
    student.batch_size = 2
    texts = ["my card never arrived", "is my card a visa or something else entirely"]  # prompts of two lengths
    expected = np.zeros((len(texts), len(LABELS)))
    for t, text in enumerate(texts):
        prompt = student._ids(classification_prompt(text), None)
        for j, answer in enumerate(student._label_answers()):
            with torch.no_grad():
                logits = student.model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
            log_probs = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
            expected[t, j] = float(log_probs.gather(1, torch.tensor(answer).unsqueeze(1)).sum())
    np.testing.assert_allclose(student.predict_logits(texts), expected, atol=1e-4)


def test_free_decoding_maps_answers_and_counts_the_unmappable(trained: Path) -> None:
    student = CausalClassifier.load(trained)
    answers = student.generate_free([text for text, _ in TRAIN], max_new_tokens=8)
    assert answers.labels == [label for _, label in TRAIN]
    assert answers.unmappable == 0
    assert [r.strip() for r in answers.raw] == [label for _, label in TRAIN]


def test_a_saved_temperature_softens_the_confidence(trained: Path) -> None:
    from trainers.encoder import save_temperature

    sharp = CausalClassifier.load(trained).predict_proba(["someone stole my card"]).max()
    save_temperature(trained, 5.0)  # the same helper the run uses for the encoder
    try:
        soft = CausalClassifier.load(trained).predict_proba(["someone stole my card"]).max()
    finally:
        save_temperature(trained, 1.0)
    assert 1 / len(LABELS) < soft < sharp
