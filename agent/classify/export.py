"""Exporting the best round's model with its card, and its int8 ONNX graph with a parity check.

The ONNX graph is a separate step (``distill export-onnx MODEL_DIR``), not part of a run's export:
a run's result is the PyTorch/sentence-transformers folder, and a deployment format that fails its
parity check must be refused without failing (or re-running) the run. It also works on any model
folder, from runs made before it existed, and costs a run nothing (about 10–20 s and 23 MB) unless
asked for.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.classify.card import model_card
from agent.classify.context import RunContext
from agent.errors import InputError, RunFailure
from trainers.deferral import TeacherCost

MIN_AGREEMENT = 0.99  # the int8 graph must give PyTorch's label on at least this share of texts
CARD_KEY = "onnx_int8"


def export_best(ctx: RunContext, best: int) -> Path:
    """Copy the best round's model to <run>/model with a full model card."""
    from trainers.student import load_student

    student = load_student(ctx.model_dir(best))
    out = ctx.run_dir / "model"
    if out.exists():
        shutil.rmtree(out)
    student.save(out, card=model_card(ctx, best))
    write_deferral(out, deferral_entry(ctx.model_dir(best), ctx.spec.deploy, _teacher_cost(ctx)))
    return out


def _teacher_cost(ctx: RunContext) -> Any:
    from agent.coverage import teacher_cost

    return teacher_cost(ctx.store, ctx.spec, [e.text for e in ctx.store.examples("heldback")])


DEFERRAL_KEY = "deferral"


def deferral_entry(round_dir: Path, deploy: Any, cost: TeacherCost | None = None) -> dict[str, Any]:
    """The deferral threshold chosen on the round's held-back items (calibrated), measured on test too.

    Only ``eval_heldback.json`` decides the threshold; ``eval_test.json``, when present, is measured
    at that threshold for the record, and its own curve is kept beside held-back's so a reader can see
    how far the held-back curve holds. With the teacher's ``cost`` per labeled text, each curve point
    carries the cascade's teacher bill per 1,000 messages (``trainers.deferral.cost_curve``).
    """
    from trainers.deferral import choose_threshold, cost_curve, coverage_curve, measure

    def items(split: str) -> tuple[list[float], list[bool]] | None:
        path = round_dir / f"eval_{split}.json"
        if not path.is_file():
            return None
        rows = json.loads(path.read_text(encoding="utf-8")).get("items", [])
        return [float(r["confidence"]) for r in rows], [bool(r["correct"]) for r in rows]

    heldback = items("heldback") or ([], [])
    chosen = choose_threshold(*heldback, target_accuracy=deploy.target_accuracy, max_defer_rate=deploy.max_defer_rate)
    entry: dict[str, Any] = {
        "threshold": chosen.threshold,
        "target": {"target_accuracy": deploy.target_accuracy, "max_defer_rate": deploy.max_defer_rate},
        "chosen_on": "heldback",
        "reason": chosen.reason,
        "heldback": {"n": chosen.n, "coverage": chosen.coverage, "accuracy_answered": chosen.accuracy_answered},
        "curve_heldback": coverage_curve(*heldback),
    }
    test = items("test")
    if test is not None:
        entry["test"] = measure(*test, chosen.threshold)
        entry["curve_test"] = coverage_curve(*test)
    if cost is not None:
        entry["teacher_cost"] = cost.to_dict()
        for key in ("curve_heldback", "curve_test"):
            if key in entry:
                entry[key] = cost_curve(entry[key], cost)
    return entry


def write_deferral(model_dir: Path, entry: dict[str, Any]) -> None:
    from trainers.encoder import read_student_meta, write_student_meta

    meta = read_student_meta(model_dir)
    meta[DEFERRAL_KEY] = entry
    write_student_meta(model_dir, meta)


@dataclass(frozen=True)
class ParityTexts:
    """The texts the ONNX graph is checked on, and where they came from (for the record)."""

    texts: list[str]
    source: str


def parity_texts(model_dir: Path, texts_file: Path | None) -> ParityTexts:
    """``--texts`` if given; else the run's test split (a run's ``model`` folder); else its validation splits.

    Why the test split: it is real data the student never trained on, and it is only reported, as
    this check is; no decision about the model is taken on it.
    """
    if texts_file is not None:
        return ParityTexts(_read_texts(texts_file), f"file {texts_file.name}")
    run_dir = model_dir.resolve().parent
    if (run_dir / "run.sqlite").is_file():
        from agent.store import RunStore

        store = RunStore(run_dir / "run.sqlite")
        try:
            for splits, name in ((("test",), "the run's test split"), (("heldback", "feedback"), "validation")):
                texts = [row.text for split in splits for row in store.examples(split)]
                if texts:
                    return ParityTexts(texts, name)
        finally:
            store.close()
    raise InputError(
        f"{model_dir}: no texts to check the ONNX model on (not a run's model folder, or the run has no "
        "test or validation data) — give --texts FILE (one text per line, or JSONL with a 'text' field)"
    )


def _read_texts(path: Path) -> list[str]:
    from agent.data_files import read_user_text

    texts = []
    for line in read_user_text(path, "--texts").splitlines():
        if not line.strip():
            continue
        item = json.loads(line) if line.lstrip().startswith("{") else line
        texts.append(str(item["text"]) if isinstance(item, dict) else item)
    if not texts:
        raise InputError(f"--texts: {path} holds no texts")
    return texts


def export_onnx(model_dir: Path, checked_on: ParityTexts, min_agreement: float = MIN_AGREEMENT) -> dict[str, Any]:
    """Write <model>/onnx (int8) if it gives PyTorch's labels on ≥ ``min_agreement`` of the texts.

    The graph is built in a staging folder and moved into place only after the check, so a refused
    export leaves no ONNX file behind and an older accepted one stays. The agreement goes to
    onnx/parity.json and, as a card entry, to distill_student.json and the README.
    """
    from trainers import onnx_model
    from trainers.encoder import EncoderClassifier
    from trainers.student import is_causal

    if is_causal(model_dir):
        raise InputError(
            f"MODEL_DIR: {model_dir} holds a causal-LM student; ONNX export covers encoder students. "
            f"Serve it with `distill serve {model_dir}` (vLLM on a GPU) or convert it to GGUF for llama.cpp"
        )
    student = EncoderClassifier.load(model_dir)
    staging = model_dir / ".onnx-staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        onnx_model.export_int8(student, staging)
        _add_threshold_to_onnx_config(model_dir, staging)
        result = onnx_model.check_agreement(
            student, onnx_model.OnnxClassifier(staging), checked_on.texts, checked_on.source
        )
        if result.agreement < min_agreement:
            raise RunFailure(
                f"ONNX int8 gives PyTorch's label on {result.agreement:.2%} of {result.texts} texts "
                f"({checked_on.source}; {result.disagreements} differ), below the required {min_agreement:.0%}: "
                "not written. Int8 rounding flips texts the student is nearly undecided about; a student "
                "trained on more data has wider margins (or lower --min-agreement knowingly)"
            )
        onnx_model.write_parity(staging, result, min_agreement)
        onnx_model.replace_folder(staging, model_dir / onnx_model.ONNX_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entry = _card_entry(result, model_dir / onnx_model.ONNX_DIR / onnx_model.MODEL_FILE)
    _add_to_card(model_dir, entry)
    return entry


def _add_threshold_to_onnx_config(model_dir: Path, onnx_dir: Path) -> None:
    """The ONNX folder ships alone: it carries the model folder's deferral threshold in its config."""
    from trainers.deferral import ONNX_CONFIG_FILE, ONNX_CONFIG_KEY, stored_threshold

    path = onnx_dir / ONNX_CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    config[ONNX_CONFIG_KEY] = stored_threshold(model_dir)
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")


def _card_entry(result: Any, path: Path) -> dict[str, Any]:
    return {
        "file": f"onnx/{path.name}",
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "agreement_with_pytorch": round(result.agreement, 4),
        "checked_on": f"{result.texts} texts ({result.source})",
        "max_probability_diff": round(result.max_probability_diff, 4),
    }


def _add_to_card(model_dir: Path, entry: dict[str, Any]) -> None:
    """Record the ONNX export in the card data and re-render the README from it."""
    from trainers.encoder import LABELS_FILE, read_student_meta, write_student_meta
    from trainers.model_card import render_model_card

    meta = read_student_meta(model_dir)
    meta["card"] = {**meta.get("card", {}), CARD_KEY: entry}
    write_student_meta(model_dir, meta)
    labels = json.loads((model_dir / LABELS_FILE).read_text(encoding="utf-8"))
    readme = render_model_card(meta["card"], labels=labels, config=meta["config"])
    (model_dir / "README.md").write_text(readme, encoding="utf-8")
