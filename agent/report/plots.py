"""The report's figures as PNG bytes. matplotlib (Agg, no pyplot state) is imported here only, when a
report is written, so the CLI itself starts fast."""

from __future__ import annotations

import io
from typing import Any

from agent.report.data import Calibration, Confusion, Deferral, ReportData

# Above this many labels a confusion matrix is unreadable as an image; the report lists top confusions.
MATRIX_MAX_LABELS = 20
_SPLIT_STYLE = {"heldback": ("held-back (decides)", "-", "o"), "test": ("test (reported)", "-", "s")}


def figures(data: ReportData) -> dict[str, bytes]:
    """Every figure the data allows, by file stem (e.g. ``macro_f1_by_round``)."""
    out: dict[str, bytes] = {}
    if any(r.macro_f1["heldback"] is not None or r.macro_f1["test"] is not None for r in data.rounds):
        out["macro_f1_by_round"] = _png(_f1_by_round, data, by_cost=False)
        out["macro_f1_by_cost"] = _png(_f1_by_round, data, by_cost=True)
    if data.per_class_f1:
        out["per_class_f1"] = _png(_heatmap, data)
    if data.confusion is not None and len(data.confusion.labels) <= MATRIX_MAX_LABELS:
        out["confusion_matrix"] = _png(_matrix, data.confusion, data.best_round)
    if data.calibration is not None:
        out["reliability"] = _png(_reliability, data.calibration, data.best_round)
    if data.deferral is not None and data.deferral.coverage.rows:
        out["coverage_accuracy_cost"] = _png(_coverage, data.deferral)
    return out


def _png(draw: Any, *args: Any, **kwargs: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure, *args, **kwargs)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _f1_by_round(figure: Any, data: ReportData, *, by_cost: bool) -> None:
    axes = figure.add_subplot()
    for split, (name, style, marker) in _SPLIT_STYLE.items():
        points = [
            (r.cumulative_usd if by_cost else r.idx, r.macro_f1[split])
            for r in data.rounds
            if r.macro_f1[split] is not None
        ]
        if points:
            axes.plot([x for x, _ in points], [y for _, y in points], style, marker=marker, label=name)
    best = next((r for r in data.rounds if r.idx == data.best_round), None)
    if best is not None and best.macro_f1["heldback"] is not None:
        x = best.cumulative_usd if by_cost else best.idx
        axes.axvline(x, color="grey", linestyle=":", label=f"best round ({best.idx})")
    axes.set_xlabel("cumulative teacher cost (USD)" if by_cost else "round")
    if not by_cost:
        axes.set_xticks([r.idx for r in data.rounds])
    axes.set_ylabel("macro-F1")
    axes.set_title("macro-F1 against teacher cost" if by_cost else "macro-F1 per round")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")


def _heatmap(figure: Any, data: ReportData) -> None:
    rounds = sorted(data.per_class_f1)
    labels = data.labels or sorted({c for scores in data.per_class_f1.values() for c in scores})
    values = [[data.per_class_f1[r].get(label, float("nan")) for r in rounds] for label in labels]
    figure.set_size_inches(max(5.0, 1.2 + 0.6 * len(rounds)), min(40.0, 1.5 + 0.22 * len(labels)))
    axes = figure.add_subplot()
    image = axes.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_xticks(range(len(rounds)), [str(r) for r in rounds])
    axes.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) > 30 else 9)
    axes.set_xlabel("round")
    axes.set_title(f"per-class F1 ({data.per_class_split})")
    figure.colorbar(image, ax=axes, label="F1")


def _matrix(figure: Any, confusion: Confusion, best: int | None) -> None:
    size = 2.5 + 0.35 * len(confusion.labels)
    figure.set_size_inches(size + 1.5, size)
    axes = figure.add_subplot()
    image = axes.imshow(confusion.matrix, cmap="Blues", interpolation="nearest")
    ticks = range(len(confusion.labels))
    axes.set_xticks(ticks, confusion.labels, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(ticks, confusion.labels, fontsize=8)
    peak = max((max(row) for row in confusion.matrix), default=0)
    for i, row in enumerate(confusion.matrix):
        for j, count in enumerate(row):
            if count:
                colour = "white" if count > peak / 2 else "black"
                axes.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(f"confusion matrix, test, round {best}")
    figure.colorbar(image, ax=axes, label="items")


def _reliability(figure: Any, calibration: Calibration, best: int | None) -> None:
    figure.set_size_inches(5.5, 5.0)
    axes = figure.add_subplot()
    filled = [b for b in calibration.bins if b.count]
    width = calibration.bins[0].high - calibration.bins[0].low if calibration.bins else 0.1
    axes.bar(
        [b.low for b in filled],
        [b.accuracy or 0.0 for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy in bin",
    )
    axes.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axes.plot(
        [b.confidence for b in filled], [b.accuracy for b in filled], "o", color="black", label="bin: mean confidence"
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"reliability, test, round {best} (ECE {calibration.ece:.3f})")
    axes.legend(loc="upper left")


def _coverage(figure: Any, deferral: Deferral) -> None:
    """Accuracy on the answered messages against the student's share, with the teacher's bill on the top axis."""
    figure.set_size_inches(6.0, 4.4)
    axes = figure.add_subplot()
    rows = deferral.coverage.rows
    axes.plot(
        [r.coverage for r in rows], [r.accuracy for r in rows], "-", marker="o", ms=3, label="held-back (decides)"
    )
    if deferral.curve_test:
        test = deferral.curve_test
        axes.plot([p["coverage"] for p in test], [p["accuracy"] for p in test], "-", marker="s", ms=3, label="test")
    chosen = [r for r in rows if r.chosen]
    if chosen:
        axes.plot([chosen[0].coverage], [chosen[0].accuracy], "*", ms=14, color="black", label="exported threshold")
    per_1k = deferral.coverage.cost.usd_per_text * 1000
    if per_1k > 0:  # the teacher's bill is linear in the share it answers: a second scale on the same axis
        top = axes.secondary_xaxis("top", functions=(lambda c: (1 - c) * per_1k, lambda usd: 1 - usd / per_1k))
        top.set_xlabel(f"teacher USD per 1k messages ({deferral.coverage.cost.source})")
    axes.set_xlim(0, 1.02)
    axes.set_xlabel("share of messages the student answers")
    axes.set_ylabel("student accuracy on them")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
