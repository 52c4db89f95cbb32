"""`distill strategies …` (audit the strategy library) and `distill chat` (the production path)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli_errors import fail, handles_errors

strategies_app = typer.Typer(
    no_args_is_help=True,
    help="Audit the strategy library of a dialogue run: list, "
    "show, approve, reject, retire, edit (new version), export, diff.",
)

RunDir = Annotated[Path, typer.Argument(help="A dialogue run directory.", show_default=False)]
StrategyId = Annotated[str, typer.Argument(help="A strategy id (see `distill strategies list`).", show_default=False)]
Note = Annotated[str | None, typer.Option("--note", help="Why: stored with the audit event.")]


def _library(run_dir: Path) -> Any:
    from agent.store import RunStore
    from agent.strategies import StrategyLibrary

    if not (run_dir / "run.sqlite").is_file():
        fail(f"RUN_DIR: {run_dir} holds no run.sqlite — pass a folder made by `distill run`")
    return StrategyLibrary(RunStore(run_dir / "run.sqlite"))


def _audit(run_dir: Path, change: Callable[[Any], Any]) -> None:
    """Apply one reviewer action to the library; an action the state machine refuses exits 2 with why."""
    from agent.strategies import AuditError

    library = _library(run_dir)
    try:
        strategy = change(library)
    except AuditError as exc:
        fail(str(exc))
        return
    typer.echo(f"{strategy.id} v{strategy.version}: {strategy.status} (library version {library.version})")


@strategies_app.command("list")
@handles_errors
def list_(
    run_dir: RunDir,
    status: Annotated[str | None, typer.Option("--status", help="proposed, approved, rejected or retired")] = None,
) -> None:
    """One line per strategy: id, version, status, scope, evidence, text."""
    from agent.strategies import STATUSES

    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}")
    library = _library(run_dir)
    for s in library.current([status] if status else None):
        ev = s.evidence
        effect = f"{ev.get('score_before', 0):.2f}→{ev.get('score_after', 0):.2f}" if "score_after" in ev else "–"
        typer.echo(
            f"{s.id}  v{s.version}  {s.status:<9} {s.scope:<16} {effect:<10} support={ev.get('support', 1)}  {s.text}"
        )


@strategies_app.command()
@handles_errors
def show(run_dir: RunDir, strategy_id: StrategyId) -> None:
    """Text, provenance, evidence, history, and scenarios with the student's answers before and after."""
    from agent.strategies import AuditError

    library = _library(run_dir)
    try:
        s = library.get(strategy_id)
    except AuditError as exc:
        fail(str(exc))
        return
    typer.echo(f"{s.id} v{s.version} [{s.status}] scope={s.scope} criterion={s.criterion}\n  {s.text}")
    typer.echo(f"provenance: {json.dumps(s.provenance)}\nevidence: {json.dumps(s.evidence)}")
    for event in library.events(s.id):
        typer.echo(
            f"  event {event.seq}: {event.action} {event.from_status}→{event.to_status}"
            + (f" ({event.note})" if event.note else "")
        )
    store = library.store
    for scenario in filter(None, map(store.scenario, s.provenance.get("scenarios", [])[:3])):
        typer.echo(f"\nscenario {scenario.id} [{scenario.flow}]: {scenario.message}")
        answers = {a.condition: a for a in store.answers(scenario_id=scenario.id)}
        for label, condition in (("before", "learning"), ("after", f"with:{s.id}")):
            if condition in answers:
                typer.echo(f"  {label} (score {answers[condition].score}): {answers[condition].reply}")


@strategies_app.command()
@handles_errors
def approve(run_dir: RunDir, strategy_id: StrategyId, note: Note = None) -> None:
    """proposed/rejected → approved: it may now reach deploy prompts."""
    _audit(run_dir, lambda library: library.transition(strategy_id, "approve", note))


@strategies_app.command()
@handles_errors
def reject(run_dir: RunDir, strategy_id: StrategyId, note: Note = None) -> None:
    """proposed/approved → rejected: never used at deploy time."""
    _audit(run_dir, lambda library: library.transition(strategy_id, "reject", note))


@strategies_app.command()
@handles_errors
def retire(run_dir: RunDir, strategy_id: StrategyId, note: Note = None) -> None:
    """approved → retired (final)."""
    _audit(run_dir, lambda library: library.transition(strategy_id, "retire", note))


@strategies_app.command()
@handles_errors
def edit(
    run_dir: RunDir,
    strategy_id: StrategyId,
    text: Annotated[str, typer.Option("--text", help="The new text (creates a new version).")],
    note: Note = None,
) -> None:
    """Replace the text; the old version stays in the history."""
    _audit(run_dir, lambda library: library.edit(strategy_id, text, note))


@strategies_app.command()
@handles_errors
def export(
    run_dir: RunDir,
    format: Annotated[str, typer.Option("--format", help="md, html or json")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")] = None,
) -> None:
    """The whole library with status, evidence and provenance, for review outside the terminal."""
    if format not in ("md", "html", "json"):
        fail("--format must be md, html or json")
    library = _library(run_dir)
    rows = [dict(s.__dict__) for s in library.current()]
    text = {
        "json": lambda: json.dumps({"library_version": library.version, "strategies": rows}, indent=2),
        "md": lambda: _markdown(rows, library.version),
        "html": lambda: _html(rows, library.version),
    }[format]()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


_COLUMNS = ("id", "v", "status", "scope", "criterion", "before→after", "held-out effect", "text")


def _cells(r: dict[str, Any]) -> list[str]:
    """One strategy's table cells as plain text, in ``_COLUMNS`` order (escaped by the caller)."""
    ev = r["evidence"]
    return [
        str(r["id"]),
        str(r["version"]),
        str(r["status"]),
        str(r["scope"]),
        str(r["criterion"] or ""),
        f"{ev.get('score_before', '')}→{ev.get('score_after', '')}",
        str(ev.get("heldout_effect", "")),
        str(r["text"]),
    ]


def _markdown(rows: list[dict[str, Any]], version: int) -> str:
    """A GFM table; every cell is teacher- or reviewer-written text, so every cell is escaped."""
    from trainers.markup import md_cell

    lines = [
        f"# Strategy library (version {version})",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    lines += ["| " + " | ".join(md_cell(cell) for cell in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _html(rows: list[dict[str, Any]], version: int) -> str:
    """A standalone page; every cell is escaped, so markup in a strategy shows as text and never runs."""
    from trainers.markup import html_text

    cells = "".join("<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in _cells(r)) + "</tr>" for r in rows)
    head = "".join(f"<th>{html_text(h)}</th>" for h in _COLUMNS)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Strategy library v{version}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head>"
        f"<body><h1>Strategy library (version {version})</h1><table><tr>{head}</tr>{cells}</table></body></html>"
    )


@strategies_app.command()
@handles_errors
def diff(
    run_dir: RunDir,
    from_version: Annotated[int, typer.Option("--from", help="Library version.")],
    to_version: Annotated[int, typer.Option("--to", help="Library version.")],
) -> None:
    """What changed between two library versions (every audit event is one version)."""
    from agent.strategies import AuditError

    library = _library(run_dir)
    try:
        changes = library.diff(from_version, to_version)
    except AuditError as exc:
        fail(str(exc))
        return
    for c in changes:
        if c["change"] == "changed":
            typer.echo(
                f"~ {c['id']}: {c['from']['status']} v{c['from']['version']} → {c['to']['status']} "
                f"v{c['to']['version']}"
                + (
                    f"\n    - {c['from']['text']}\n    + {c['to']['text']}"
                    if c["from"]["text"] != c["to"]["text"]
                    else ""
                )
            )
        else:
            sign = "+" if c["change"] == "added" else "-"
            item = c.get("to") or c.get("from")
            typer.echo(f"{sign} {c['id']}: [{item['status']}] {item['text']}")
    if not changes:
        typer.echo("no changes")


def chat(
    run_dir: RunDir,
    message: Annotated[
        list[str] | None,
        typer.Option(
            "--message", "-m", help="Answer these and exit (default: read messages from stdin, one per line)."
        ),
    ] = None,
) -> None:
    """Answer customer messages through the production path: retrieval + approved strategies + student."""
    import sys

    from agent.dialogue.run import chat_answer, load_dialogue_spec
    from agent.dialogue.student import open_student
    from agent.run import memoised_embedder

    spec = load_dialogue_spec(run_dir)
    embed = memoised_embedder(None)
    messages = message or (line.strip() for line in sys.stdin)
    with open_student(spec.student) as student:
        for text in messages:
            if not text:
                continue
            reply, used = chat_answer(run_dir, text, student, embed)
            typer.echo(f"customer: {text}\nagent: {reply}")
            for sid, strategy_text, score in used:
                typer.echo(f"  used {sid} (similarity {score:.2f}): {strategy_text}")
            if not used:
                typer.echo("  used no strategy (none approved for this kind of message)")
