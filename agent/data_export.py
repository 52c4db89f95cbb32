"""The run's data as a product: every example with its provenance, as JSONL or a `datasets` folder, with a card.

``distill export RUN_DIR --data OUT`` writes OUT (a folder):

* ``examples.jsonl`` (``--format jsonl``): one line per example, its ``split`` one of train (kept by
  the filters), dropped, feedback, heldback, test (and unfiltered, for examples of a round that stopped
  before its filter step); or (``--format hf``) a ``DatasetDict`` written by ``save_to_disk`` with
  those splits, which ``datasets.load_from_disk(OUT)`` reads back;
* ``README.md``: the dataset card — counts by label, origin, round and split, kept and dropped by
  filter, the teacher, and the licence caveat of teacher-written text.

Each example carries its provenance: origin, round, teacher call id, prompt id and version, the
teacher's model, strategy id, every filter verdict with its reason, and the label audit's outcome
(kept, relabelled or dropped), the label it had before and the reason, when the audit flagged it. A
drop by the audit is also a ``label_audit`` filter verdict, like any other filter's. The store is only read, so an
export works while a run holds the lock (it sees the data durable at that moment). OUT is written
beside its final place and renamed into it, so a crash never leaves half an export under that name.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from agent.errors import InputError
from agent.run_kind import SPEC_FILE, STORE_FILE
from agent.spec import RunSpec
from agent.store import CallOrigin, ExampleProvenance, LabelAuditRow, RunStore
from trainers.atomic import write_folder
from trainers.markup import md_cell, md_text
from trainers.model_card import public_name

ExportFormat = Literal["jsonl", "hf"]
DATA_FILE = "examples.jsonl"
CARD_FILE = "README.md"
EVALUATION_SPLITS = ("feedback", "heldback", "test")
# The order of splits in the file and the card; "unfiltered" appears only when a round stopped mid-way.
TRAINING_SPLITS = ("train", "dropped", "unfiltered")
SPLITS = (*TRAINING_SPLITS, *EVALUATION_SPLITS)


@dataclass(frozen=True)
class DataExport:
    out: Path
    counts: dict[str, int]  # examples per split


def export_data(run_dir: Path, out: Path, fmt: ExportFormat = "jsonl", *, force: bool = False) -> DataExport:
    """Write the run's examples with provenance and a dataset card to the folder ``out``."""
    spec = stored_classification_spec(run_dir)
    check_output_folder(run_dir, out, "--data", force=force)
    records = read_records(run_dir)
    splits = {name: [r for r in records if r["split"] == name] for name in SPLITS}
    splits = {name: rows for name, rows in splits.items() if rows or name != "unfiltered"}
    store = RunStore(run_dir / STORE_FILE)
    try:
        usage = store.call_summary()
    finally:
        store.close()
    card = dataset_card(spec, records, dict(usage), fmt)
    write_folder(out, lambda tmp: _write(tmp, splits, records, card, fmt))
    return DataExport(out, {name: len(rows) for name, rows in splits.items()})


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """Every example of the run as a flat record with its provenance, train first, in store order."""
    store = RunStore(run_dir / STORE_FILE)
    try:
        calls = store.call_origins()
        audits = {a.example_id: a for a in store.label_audits()}  # at most one per example: never asked twice
        return [
            _record(example, split, calls, audits.get(example.id))
            for split in ("train", *EVALUATION_SPLITS)
            for example in store.example_provenance(split)
        ]
    finally:
        store.close()


def _record(
    e: ExampleProvenance, split: str, calls: dict[int, CallOrigin], audit: LabelAuditRow | None
) -> dict[str, Any]:
    call = calls.get(e.teacher_call_id) if e.teacher_call_id is not None else None
    if split == "train":
        split = {True: "train", False: "dropped", None: "unfiltered"}[e.kept]
    return {
        "id": e.id,
        "text": e.text,
        "label": e.label,
        "split": split,
        "origin": e.origin,
        "round": e.round,
        "kept": e.kept,
        "teacher_call_id": e.teacher_call_id,
        "prompt_id": e.prompt_id if e.prompt_id is not None else (call.prompt_id if call else None),
        "prompt_version": call.prompt_version if call else None,
        "teacher_model": call.model if call else None,
        "strategy_id": e.strategy_id,
        "dropped_by": [v.filter for v in e.verdicts if not v.kept],
        "verdicts": [{"filter": v.filter, "kept": v.kept, "reason": v.reason} for v in e.verdicts],
        # Flat fields rather than a nested object, so the `datasets` export keeps one column type per field.
        "audit_outcome": str(audit.outcome) if audit else None,
        "original_label": audit.given_label if audit else None,
        "audit_reason": audit.reason if audit else None,
    }


def stored_classification_spec(run_dir: Path) -> RunSpec:
    """The run's resolved spec as stored; its data files need not exist any more (nothing reads them)."""
    if not (run_dir / STORE_FILE).is_file() or not (run_dir / SPEC_FILE).is_file():
        raise InputError(
            f"RUN_DIR: {run_dir} is not a distill run (no {STORE_FILE}) — pass a folder made by `distill run`"
        )
    data = json.loads((run_dir / SPEC_FILE).read_text(encoding="utf-8"))
    if isinstance(data.get("task"), dict) and data["task"].get("kind") == "dialogue":
        raise InputError(
            f"RUN_DIR: {run_dir} is a dialogue run: it has strategies, not examples — "
            f"use `distill strategies export {run_dir}`"
        )
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            f"RUN_DIR: {run_dir}/{SPEC_FILE} is not a spec this version reads ({exc.errors()[0]['msg']})"
        ) from None


def check_output_folder(run_dir: Path, out: Path, option: str, *, force: bool) -> None:
    """Refuse ``out`` when it is the run (or holds it), or is not empty and ``force`` is not given."""
    target, run = out.resolve(), run_dir.resolve()
    if target == run or target in run.parents:
        raise InputError(f"{option}: {out} holds the run itself — choose a folder of its own, e.g. {run_dir}/data")
    if (target.is_file() or (target.is_dir() and any(target.iterdir()))) and not force:
        raise InputError(f"{option}: {out} is not empty — choose a new folder, or add --force to replace what is there")


def _write(
    folder: Path, splits: dict[str, list[dict[str, Any]]], records: list[dict[str, Any]], card: str, fmt: ExportFormat
) -> None:
    if fmt == "hf":
        from trainers.hf_data import save_splits

        save_splits(splits, folder)
    else:
        with (folder / DATA_FILE).open("w", encoding="utf-8") as handle:
            for rows in splits.values():
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (folder / CARD_FILE).write_text(card, encoding="utf-8")


# -- the dataset card -----------------------------------------------------------------------------------


def dataset_card(spec: RunSpec, records: list[dict[str, Any]], usage: dict[str, Any], fmt: ExportFormat) -> str:
    """The README: what the data is, how much of each kind, what the filters did, and whose text it is."""
    teacher = spec.teacher
    splits = [s for s in SPLITS if any(r["split"] == s for r in records)]
    parts = [
        _front_matter(spec, len(records)),
        f"# {md_text(spec.name)} — distilled classification data\n",
        f"{md_text(spec.task.description)}\n",
        f"Written by `distill export` from a distillation run: {len(records):,} examples, "
        f"{len(spec.task.labels)} labels. Teacher: {md_text(teacher.provider)} / {md_text(public_name(teacher.model))} "
        f"({usage.get('calls', 0):,} calls, {usage.get('cache_hits', 0):,} from the cache, "
        f"${usage.get('cost_usd', 0.0):.4f}).\n",
        "## Licence and terms — read before you publish\n",
        _licence_caveat(spec),
        "## Splits\n",
        _split_help(fmt),
        _table(["split", "examples"], [[s, sum(r["split"] == s for r in records)] for s in splits]),
        "## Examples by label\n",
        _crosstab(records, "label", splits, order=spec.task.label_names),
        "## Examples by origin\n",
        "*real*: your files (seed, validation, test); *generated*: written by the teacher; *active*: your "
        "unlabeled texts, labeled by the teacher.\n",
        _crosstab(records, "origin", splits),
        "## Training examples by round\n",
        _crosstab([r for r in records if r["split"] in TRAINING_SPLITS], "round", _training(splits)),
        "## Filters: kept and dropped\n",
        "Every training example gets a verdict from each filter that looked at it; one drop removes it.\n",
        _filter_table(records),
        "## Label audit\n",
        "After each round's filters, confident learning on out-of-fold probabilities flagged training labels "
        "that looked wrong; each got a second opinion from the teacher. *kept*: the teacher confirmed the "
        "label (or gave no usable answer); *relabelled*: it agreed with the audit's suggestion, which is now the "
        "label (the old one is in `original_label`); *dropped*: it named a third label, so the text is ambiguous "
        "and left out of training.\n",
        _audit_table(records),
        "## Fields\n",
        _fields_help(),
    ]
    return "\n".join(parts)


def _training(splits: list[str]) -> list[str]:
    return [s for s in splits if s in TRAINING_SPLITS]


def _front_matter(spec: RunSpec, n: int) -> str:
    size = "n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "n>100K"
    meta = {
        "license": spec.card.license,
        "language": spec.card.language,
        "task_categories": ["text-classification"],
        "size_categories": [size],
        "tags": ["distill", "synthetic", *spec.card.tags],
        "pretty_name": spec.name,
    }
    lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in meta.items()]
    return "---\n" + "\n".join(lines) + "\n---\n"


def _licence_caveat(spec: RunSpec) -> str:
    t = spec.teacher
    return (
        "Examples with origin *generated* were written, and *active* ones labeled, by the teacher model "
        f"{md_text(public_name(t.model))} ({md_text(t.provider)}). Your provider's terms of use govern "
        "that output: many forbid using it to build models that compete with theirs, and some restrict "
        "redistribution. Examples with origin *real* come from your own files and keep their own licence. "
        f"The licence declared above ({md_text(spec.card.license)}, from the spec's `card.license`) is "
        "yours to choose within both; `other` means no one has chosen yet.\n"
    )


def _split_help(fmt: ExportFormat) -> str:
    where = (
        "`datasets.load_from_disk` on this folder returns a `DatasetDict` with these splits"
        if fmt == "hf"
        else f"`{DATA_FILE}` holds one JSON object per line; its `split` field is one of these"
    )
    return (
        f"{where}. *train*: kept by every filter, what the student learned from; *dropped*: removed by a "
        "filter (the reasons are in `verdicts`); *unfiltered*: written in a round that stopped before its "
        "filter step; *feedback*: validation examples the teacher may see; *heldback*: validation the teacher "
        "never saw, which alone chose the best round; *test*: reported only.\n"
    )


def _crosstab(records: list[dict[str, Any]], key: str, splits: list[str] | tuple[str, ...], order: Any = None) -> str:
    counts = Counter((r[key], r["split"]) for r in records)
    values = list(order) if order is not None else sorted({r[key] for r in records}, key=str)
    rows = [[v, *(counts[(v, s)] for s in splits), sum(counts[(v, s)] for s in splits)] for v in values]
    return _table([key, *splits, "total"], rows)


def _filter_table(records: list[dict[str, Any]]) -> str:
    kept: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for record in records:
        for v in record["verdicts"]:
            (kept if v["kept"] else dropped)[v["filter"]] += 1
            if not v["kept"]:
                reasons.setdefault(v["filter"], Counter())[v["reason"]] += 1
    if not kept and not dropped:
        return "No filter verdicts stored yet.\n"
    rows = [
        [name, kept[name], dropped[name], _top_reason(reasons.get(name))] for name in sorted(set(kept) | set(dropped))
    ]
    return _table(["filter", "kept", "dropped", "most frequent reason for a drop"], rows)


def _audit_table(records: list[dict[str, Any]]) -> str:
    outcomes = Counter(r["audit_outcome"] for r in records if r["audit_outcome"] is not None)
    if not outcomes:
        return "No label was flagged (or the audit was off).\n"
    changes = Counter(
        (r["original_label"], r["label"]) for r in records if r["audit_outcome"] == "relabelled"
    ).most_common(5)
    rows = [[outcome, outcomes[outcome]] for outcome in ("kept", "relabelled", "dropped")]
    table = _table(["outcome", "examples"], rows)
    if changes:
        table += "\n" + _table(["relabelled from", "to", "examples"], [[a, b, n] for (a, b), n in changes])
    return table


def _top_reason(reasons: Counter[str] | None) -> str:
    if not reasons:
        return ""
    reason, n = reasons.most_common(1)[0]
    return f"{reason} ({n})"


def _fields_help() -> str:
    fields = [
        ("text, label", "the example"),
        ("split", "see Splits"),
        ("origin", "real, generated or active"),
        ("round", "the round that added it (0: seed and evaluation sets)"),
        ("kept", "the filters' verdict (null: not filtered yet); evaluation examples are stored as given, kept"),
        ("teacher_call_id", "the teacher call that wrote or labeled it (the run's journal, run.sqlite)"),
        ("prompt_id, prompt_version", "the prompt template of that call"),
        ("teacher_model", "the model that answered it"),
        ("strategy_id", "the strategy that guided it, if any"),
        ("verdicts, dropped_by", "each filter's verdict and reason; the filters that dropped it"),
        (
            "audit_outcome, original_label, audit_reason",
            "the label audit's outcome, the label before it, and why (null: not flagged)",
        ),
    ]
    return _table(["field", "meaning"], [list(f) for f in fields])


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; every cell is escaped (labels, reasons and origins may hold any text)."""
    lines = ["| " + " | ".join(md_cell(str(h)) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
