"""The report as Markdown: the same sections and numbers as the HTML, figures as PNG files beside it.

Every teacher- or user-written text goes through ``md_text``/``md_cell``. Markdown cannot filter, so
the examples section gives counts, the drops per filter and the first dropped examples with their
reasons; the HTML report has the full example browser.
"""

from __future__ import annotations

from agent.report import tables
from agent.report.data import ReportData
from agent.report.html import SECTIONS
from agent.report.plots import MATRIX_MAX_LABELS
from agent.report.tables import Table
from trainers.markup import md_cell, md_text

DROPPED_LISTED = 50
AUDITS_LISTED = 50
_TITLES = dict(SECTIONS)


def render_markdown(data: ReportData, images: dict[str, str]) -> str:
    """``images`` maps a figure's stem to its file name beside the Markdown file."""
    parts = [
        f"# distill report: {md_text(data.name)}",
        _heading("summary"),
        _key_values(tables.summary(data)),
        _heading("scores"),
        "Held-back validation alone decides early stopping and the best round; test is reported only.",
        _table(tables.rounds(data)),
        _image(images, "macro_f1_by_round", "macro-F1 per round"),
        _image(images, "macro_f1_by_cost", "macro-F1 against cumulative teacher cost"),
        _heading("per-class"),
        *_per_class(data, images),
        _heading("confusion"),
        *_confusion(data, images),
        _heading("calibration"),
        *_calibration(data, images),
        _heading("deferral"),
        *_deferral(data, images),
        _heading("scope"),
        *([tables.SCOPE_NOTE, _table(tables.scope(data))] if data.scope else [tables.NO_SCOPE]),
        _heading("label-audit"),
        *_label_audit(data),
        _heading("decisions"),
        *_decisions(data),
        _heading("examples"),
        *_examples(data),
        _heading("guidelines"),
        _table(tables.guidelines(data)) if data.guidelines else "No strategies or labeling guidelines in this run.",
        _heading("cost"),
        "Every journaled teacher call per prompt; a cache hit costs nothing.",
        _table(tables.cost(data)),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _heading(key: str) -> str:
    return f"## {_TITLES[key]}"


def _key_values(rows: list[tuple[str, str]]) -> str:
    return _table(Table(["", ""], [[k, v] for k, v in rows]))


def _table(table: Table) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in table.headers) + " |"]
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _image(images: dict[str, str], name: str, alt: str) -> str:
    return f"![{alt}]({images[name]})" if name in images else ""


def _per_class(data: ReportData, images: dict[str, str]) -> list[str]:
    if not data.per_class_f1:
        return ["No round has been evaluated yet."]
    return [
        f"F1 per label on the {data.per_class_split} split, per round.",
        _image(images, "per_class_f1", "per-class F1 heatmap"),
        _table(tables.per_class(data)),
    ]


def _confusion(data: ReportData, images: dict[str, str]) -> list[str]:
    if data.confusion is None:
        return ["No test evaluation of the best round (no test split, or none yet)."]
    many = len(data.confusion.labels) > MATRIX_MAX_LABELS
    intro = (
        f"{len(data.confusion.labels)} labels: too many for a readable matrix; the most frequent confusions instead."
        if many
        else f"Round {data.best_round} on {data.confusion.n} test items; rows gold, columns predicted."
    )
    return [
        intro,
        _image(images, "confusion_matrix", "confusion matrix"),
        f"### Top confusions (up to {tables.TOP_CONFUSIONS})",
        _table(tables.confusions(data)),
    ]


def _calibration(data: ReportData, images: dict[str, str]) -> list[str]:
    if data.calibration is None:
        return ["No test evaluation of the best round (no test split, or none yet)."]
    return [
        md_text(tables.ece_sentence(data.calibration)),
        _image(images, "reliability", "reliability diagram"),
        _table(tables.calibration(data)),
    ]


def _deferral(data: ReportData, images: dict[str, str]) -> list[str]:
    if data.deferral is None:
        return [tables.NO_DEFERRAL]
    return [
        *(md_text(line) for line in tables.deferral_notes(data.deferral)),
        _image(images, "coverage_accuracy_cost", "coverage, accuracy and teacher cost"),
        _table(tables.deferral(data)),
    ]


def _label_audit(data: ReportData) -> list[str]:
    if not data.audits:
        return [tables.NO_AUDIT]
    listed = data.audits[:AUDITS_LISTED]
    more = (
        f" (the first {len(listed)} of {len(data.audits)}; report.html lists more)"
        if len(data.audits) > len(listed)
        else ""
    )
    return [
        tables.AUDIT_NOTE,
        _table(tables.audit_counts(data)),
        f"### Flagged examples{more}",
        _table(tables.audits(data, AUDITS_LISTED)),
    ]


def _decisions(data: ReportData) -> list[str]:
    out = []
    for r in data.rounds:
        decision = r.decision or f"not decided yet ({r.status})"
        reasons = "\n".join(f"- {md_text(reason)}" for reason in r.reasons)
        out.append(f"### Round {r.idx}: {md_text(decision)}")
        out += [reasons, f"next quotas: {md_text(tables.quotas(r.quotas))}"]
    return out or ["No round yet."]


def _examples(data: ReportData) -> list[str]:
    dropped = [e for e in data.examples if e.kept is False]
    listed = dropped[:DROPPED_LISTED]
    more = f" (the first {len(listed)} of {len(dropped)})" if len(dropped) > len(listed) else ""
    return [
        f"{len(data.examples)} training examples. The HTML report (report.html) browses every one of them "
        "with its provenance, filterable by round, label, origin and kept/dropped.",
        _table(tables.example_counts(data)),
        "### Drops by filter",
        _table(tables.drops_by_filter(data)),
        f"### Dropped examples{more}",
        _table(Table(tables.EXAMPLE_HEADERS, [tables.example_row(e) for e in listed])) if listed else "None.",
    ]
