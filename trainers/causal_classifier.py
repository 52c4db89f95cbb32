"""Classification as generation: a causal LM student that writes the label's name.

Training pairs are (message → label name) chats; the SFT lives in ``trainers.sft``. At inference the answer
is *constrained* to the label set by scoring: each label's tokens (with the end-of-turn token, so that
``card`` does not win over ``card_arrival`` by stopping early) are scored after the prompt, and the sum of
their log-probabilities is the label's logit. A softmax over those gives a real distribution, so
calibration, deferral and confidence-based active learning work exactly as for the encoder.

``decode="free"`` instead lets the model write greedily and maps what it wrote onto a label
(``map_to_label``); what cannot be mapped is counted, never guessed.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainers.causal_config import CausalLMConfig
from trainers.encoder import LABELS_FILE, STUDENT_FILE, read_student_meta, write_student_meta
from trainers.model_card import render_model_card
from trainers.rejection import Rejection, answers
from trainers.sft import SFTStats
from trainers.student import CAUSAL_FORMAT as FORMAT

Progress = Callable[[int, int], None]

SYSTEM_PROMPT = "Classify the user's message. Answer with the label name only."
_SEPARATORS = re.compile(r"[\s\-/]+")
_STRIP = "\"'`.,;:!?()[]{}<>*"


def classification_prompt(text: str) -> list[dict[str, str]]:
    """The chat the student is trained on and asked with: one definition for training and inference."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]


def normalise_label(text: str) -> str:
    return _SEPARATORS.sub("_", text.strip().strip(_STRIP).lower()).strip("_")


def map_to_label(output: str, labels: Sequence[str]) -> str | None:
    """The label a free-text answer names, or ``None`` when it names none (or two equally well).

    Exact after normalising case, spaces, hyphens and quotes; else the one label named inside the first
    line of the answer ("Label: lost_card." → lost_card). Never the nearest by edit distance, never one of
    two named: a made-up or hedged answer is an error to count, not a guess to hide.
    """
    by_norm = {normalise_label(label): label for label in labels}
    first_line = output.strip().splitlines()[0].lower() if output.strip() else ""
    if normalise_label(first_line) in by_norm:
        return by_norm[normalise_label(first_line)]
    spans = {label: _mentions(first_line, norm) for norm, label in by_norm.items() if norm}
    # A mention inside a longer label's mention is part of it ("card" in "card arrival"), not a second answer.
    named = {label for label, mine in spans.items() if any(_stands_alone(span, label, spans) for span in mine)}
    return named.pop() if len(named) == 1 else None


def _stands_alone(span: tuple[int, int], label: str, spans: dict[str, list[tuple[int, int]]]) -> bool:
    """Whether a mention of ``label`` is not part of a longer mention of another label."""
    start, end = span
    return not any(
        a <= start and end <= b and (a, b) != span
        for other, theirs in spans.items()
        if other != label
        for a, b in theirs
    )


def _mentions(line: str, norm: str) -> list[tuple[int, int]]:
    """Where ``line`` names the label as a whole word group, its parts joined by _, - or spaces
    ("card" is not named by "card_arrivals": an underscore joins words into one name)."""
    parts = r"[\s_\-]+".join(re.escape(part) for part in norm.split("_"))
    return [m.span() for m in re.finditer(rf"(?<![a-z0-9_]){parts}(?![a-z0-9_])", line)]


@dataclass(frozen=True)
class FreeAnswers:
    labels: list[str | None]  # None: the answer named no label
    raw: list[str]

    @property
    def unmappable(self) -> int:
        return sum(label is None for label in self.labels)


class CausalClassifier:
    """A causal LM that writes label names, with the encoder student's interface: ``create`` → ``train`` →
    ``save``; ``load``; ``predict_logits`` / ``predict_proba`` / ``predict``; ``temperature`` and the
    out-of-scope ``rejection`` in ``distill_student.json`` (so calibration and rejection are saved the same way).
    """

    def __init__(self, labels: list[str], config: CausalLMConfig, folder: Path | None, *, batch_size: int = 32) -> None:
        self.labels = list(labels)
        self.config = config
        self.batch_size = batch_size
        self.temperature = 1.0
        self.rejection: Rejection | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self._folder = folder  # the trained weights (a saved model, or training's scratch output)
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._answers: list[list[int]] | None = None
        if folder is not None:
            self._load_weights(folder)

    @classmethod
    def create(cls, labels: list[str], config: CausalLMConfig | None = None) -> CausalClassifier:
        """An untrained student: ``train`` fine-tunes ``config.base_model`` on (message → label name) chats."""
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError("labels: a classifier needs at least 2 distinct labels")
        return cls(labels, config or CausalLMConfig(), None)

    @classmethod
    def load(cls, directory: str | Path) -> CausalClassifier:
        directory = Path(directory)
        meta = read_student_meta(directory)
        if meta.get("format") != FORMAT:
            raise FileNotFoundError(f"{directory} is not a distill causal-LM student ({STUDENT_FILE} format)")
        labels = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        student = cls(labels, CausalLMConfig.model_validate(meta["config"]), directory)
        student.temperature = float(meta.get("temperature", 1.0))
        student.rejection = Rejection.from_dict(meta["rejection"]) if meta.get("rejection") else None
        return student

    def train(self, texts: list[str], labels: list[str], *, progress: Progress | None = None) -> SFTStats:
        """Fine-tune on (text → label) with TRL; the weights stay in a scratch folder until ``save``."""
        from trainers.local_llm import model_cache_dir
        from trainers.sft import SFTExample, train_sft

        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(f"training labels not in the label set: {unknown[:5]}")
        self._scratch = tempfile.TemporaryDirectory(prefix="distill-causal-")
        out = Path(self._scratch.name) / "model"
        examples = [SFTExample(classification_prompt(t), y) for t, y in zip(texts, labels, strict=True)]
        stats = train_sft(examples, self.config, out, cache_dir=model_cache_dir(), progress=progress).stats
        self._folder = out
        self._load_weights(out)
        return stats

    def save(self, directory: str | Path, card: dict[str, Any] | None = None) -> Path:
        """A plain Hugging Face folder (loads with transformers, serves with vLLM) + labels + student meta."""
        if self._folder is None:
            raise ValueError("train the student before saving it")
        directory = Path(directory)
        if directory.resolve() != self._folder.resolve():
            if directory.exists():
                shutil.rmtree(directory)
            shutil.copytree(self._folder, directory)
        (directory / LABELS_FILE).write_text(json.dumps(self.labels, indent=1, ensure_ascii=False), encoding="utf-8")
        meta = {
            "format": FORMAT,
            "format_version": 1,
            "prompt": SYSTEM_PROMPT,
            "temperature": self.temperature,
            "rejection": self.rejection.to_dict() if self.rejection else None,
            "config": self.config.model_dump(mode="json"),
            "card": card or {},
        }
        write_student_meta(directory, meta)
        readme = render_model_card(
            card or {}, labels=self.labels, config=self.config.model_dump(mode="json"), usage=_usage(directory)
        )
        (directory / "README.md").write_text(readme, encoding="utf-8")
        return directory

    def _load_weights(self, folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
        self.model.eval()
        self._answers = None

    # -- constrained: score every label ---------------------------------------------------------------------

    def predict_logits(self, texts: list[str]) -> np.ndarray:
        """Per text and label: the summed log-probability of the label's answer tokens after the prompt.

        The prompt is read once per text and its key–value cache shared by every label's answer (up to
        ``batch_size`` answers per forward pass): the same numbers as scoring each prompt + answer in full,
        for a fraction of the compute, since a prompt is many times longer than an intent's name.
        """
        answers = self._label_answers()
        scores = np.zeros((len(texts), len(self.labels)))
        for t, text in enumerate(texts):
            prompt = self._ids(classification_prompt(text), None)
            for first in range(0, len(answers), self.batch_size):
                chunk = answers[first : first + self.batch_size]
                scores[t, first : first + len(chunk)] = self._answer_log_likelihoods(prompt, chunk)
        return scores

    def _answer_log_likelihoods(self, prompt: list[int], answers: list[list[int]]) -> np.ndarray:
        """Summed log-probability of each answer after ``prompt``: one pass over the prompt, one over the answers."""
        import torch

        ids, mask = _pad_right(answers, int(self.tokenizer.pad_token_id))
        count, width = ids.shape
        with torch.no_grad():
            head = self.model(input_ids=torch.tensor([prompt]), use_cache=True)
            cache = head.cache  # transformers 5 names it cache (past_key_values is its deprecated alias)
            cache.batch_repeat_interleave(count)
            positions = torch.arange(len(prompt), len(prompt) + width).expand(count, width)
            attention = torch.cat([torch.ones(count, len(prompt), dtype=mask.dtype), mask], dim=1)
            tail = self.model(input_ids=ids, attention_mask=attention, position_ids=positions, cache=cache)
        # The prompt's last position predicts each answer's first token; answer position k predicts token k + 1.
        first = head.logits[0, -1].float().expand(count, 1, -1)
        logits = torch.cat([first, tail.logits[:, :-1].float()], dim=1)
        picked = torch.log_softmax(logits, dim=-1).gather(2, ids.unsqueeze(2)).squeeze(2)
        return (picked * mask).sum(dim=1).double().numpy()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities over the labels, ``softmax(label log-likelihoods / temperature)``."""
        from trainers.calibration import softmax

        if not texts:
            return np.zeros((0, len(self.labels)))
        return softmax(self.predict_logits(texts), self.temperature)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """The answer and its confidence per text, with the saved out-of-scope rule (as the encoder does)."""
        return answers(self.predict_proba(texts), self.labels, self.rejection)

    # -- free: generate, then map -------------------------------------------------------------------------

    def generate_free(self, texts: list[str], *, max_new_tokens: int = 16) -> FreeAnswers:
        import torch

        raw = []
        for text in texts:
            prompt = self._ids(classification_prompt(text), None)
            ids = torch.tensor([prompt])
            with torch.no_grad():
                out = self.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            raw.append(self.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True))
        return FreeAnswers([map_to_label(r, self.labels) for r in raw], raw)

    # -- tokens -------------------------------------------------------------------------------------------

    def _ids(self, messages: list[dict[str, str]], answer: str | None) -> list[int]:
        chat = messages if answer is None else [*messages, {"role": "assistant", "content": answer}]
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=answer is None, tokenize=True)
        if not isinstance(ids, list):  # a BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def _label_answers(self) -> list[list[int]]:
        """Each label's answer tokens as training saw them: the chat with the answer minus the prompt, up to
        the end of turn (the template's newline after it predicts nothing). The same after any message."""
        if self._answers is None:
            messages = classification_prompt("-")
            prompt = self._ids(messages, None)
            end = self.tokenizer.convert_tokens_to_ids(self.tokenizer.eos_token)
            answers = []
            for label in self.labels:
                full = self._ids(messages, label)
                if full[: len(prompt)] != prompt:
                    raise ValueError("the chat template renders a prompt differently once answered; cannot score")
                answer = full[len(prompt) :]
                answers.append(answer[: answer.index(end) + 1] if end in answer else answer)
            self._answers = answers
        return self._answers


def _usage(directory: Path) -> str:
    """How to use the folder: our own trusted Markdown for the model card."""
    return (
        "A causal LM fine-tuned to answer with the label's name (classification as generation). With distill, "
        "answers are constrained to the label set and carry a calibrated confidence:\n\n"
        f'```bash\ndistill predict {directory.name} "my card has not arrived"\n'
        f"distill serve {directory.name}   # OpenAI-compatible chat endpoint (vLLM on a GPU)\n```\n\n"
        "Plain transformers: load the folder with `AutoModelForCausalLM`/`AutoTokenizer`, apply the chat template "
        f"to a system message `{SYSTEM_PROMPT}` and the user's text, and generate greedily; map the answer onto "
        "the labels in `labels.json`."
    )


def _pad_right(sequences: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return ids, mask
