"""`distill report RUN_DIR`: one self-contained HTML file and a Markdown version of a classifier run.

``data`` gathers what the store and the best round's test evaluation say (read-only, so a running run
can be reported), ``plots`` draws the figures, ``tables`` lays out the cells both renderings share, and
``html`` / ``markdown`` render them with every teacher- and user-written text escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    images: list[Path]


def write_report(run_dir: Path, out_dir: Path | None = None) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and the Markdown's PNGs into ``out_dir`` (default <run>/report)."""
    from agent.report.data import gather
    from agent.report.html import render_html
    from agent.report.markdown import render_markdown
    from agent.report.plots import figures

    data = gather(run_dir)
    images = figures(data)
    out = out_dir if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, png in images.items():
        path = out / f"{stem}.png"
        path.write_bytes(png)
        written.append(path)
    html_path, markdown_path = out / HTML_NAME, out / MARKDOWN_NAME
    html_path.write_text(render_html(data, images), encoding="utf-8")
    markdown_path.write_text(render_markdown(data, {p.stem: p.name for p in written}), encoding="utf-8")
    return ReportFiles(html_path, markdown_path, written)
