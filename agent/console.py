"""Terminal output: one rich console (stderr), progress bars, warnings. Quiet under ``DISTILL_QUIET=1``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False)


def quiet() -> bool:
    return os.environ.get("DISTILL_QUIET") == "1"


def info(message: str) -> None:
    """A line of progress; ``message`` is plain text (labels, file names and teacher text may hold [brackets])."""
    if not quiet():
        console.print(escape(message))


def warn(message: str) -> None:
    console.print(f"[bold yellow]warning:[/] {escape(message)}")


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar; yields ``advance()`` (one step) or ``advance(done, total)`` (absolute)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=quiet(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(done: int | None = None, new_total: int | None = None) -> None:
            if done is None:
                bar.advance(task)
            else:
                bar.update(task, completed=done, total=new_total)

        yield advance


def round_summary(round: int, scores: dict[str, dict[str, float]], drops: dict[str, int]) -> None:
    """A one-table summary of a finished round: metrics per split and what the filters dropped."""
    if quiet():
        return
    from rich.table import Table

    table = Table(title=f"round {round}", show_edge=False)
    for column in ("split", "accuracy", "macro-F1", "ECE"):
        table.add_column(column)
    for split, m in scores.items():
        table.add_row(split, f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}", f"{m['ece']:.3f}")
    console.print(table)
    if drops:
        console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())))


def decision(round: int, label: str, reasons: list[str]) -> None:
    colour = "red" if label == "stop" else "green"
    if not quiet():
        console.print(f"[bold {colour}]round {round}: {escape(label)}[/] — " + escape("; ".join(reasons)))
