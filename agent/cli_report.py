"""`distill report RUN_DIR`: the run as one self-contained HTML page and a Markdown version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli_errors import handles_errors


def register(app: typer.Typer) -> None:
    app.command()(report)


@handles_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `distill run`.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for report.html, report.md and their PNGs (default <run>/report)."),
    ] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the HTML report in a web browser.")] = False,
) -> None:
    """A classifier run as one self-contained HTML file (no network request) and a Markdown version.

    Summary, macro-F1 per round and against teacher cost, per-class F1, the best round's confusion matrix and
    reliability diagram on test, decisions, every example with its provenance, guidelines and cost. Read-only:
    works while the run is still going. Dialogue runs are not supported yet (exit 2)."""
    from agent.report import write_report

    files = write_report(run_dir, out)
    typer.echo(f"report: {files.html}")
    typer.echo(f"markdown: {files.markdown}")
    if open_page:
        import webbrowser

        webbrowser.open(files.html.resolve().as_uri())
