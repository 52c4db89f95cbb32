"""The report as one self-contained HTML file: figures inline as base64 PNG, CSS and the example browser's
script inline, and a Content-Security-Policy that allows no network request and no script but ours.

Every teacher- or user-written text goes through ``html_text``; the examples travel as JSON in a
``<script type="application/json">`` block (never executed, ``<`` escaped so no text can close it) and
the browser's script puts them into the page with ``textContent`` only, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from agent.report import tables
from agent.report.data import ReportData
from agent.report.plots import MATRIX_MAX_LABELS
from agent.report.tables import Table
from agent.store import ExampleProvenance
from trainers.markup import html_text

# The example browser keeps every example in the page up to this many (pages of 100 rows keep the DOM
# small); a larger run lists the newest ones and says so.
MAX_BROWSER_EXAMPLES = 50_000
PAGE_ROWS = 100
MAX_AUDITS_LISTED = 2_000  # flagged examples listed in the page (a run flags a few percent of its data)
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#1d232a;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;margin-top:2em}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef2f6}tbody tr:nth-child(even){background:#f8fafc}td.num{text-align:right}
img{max-width:100%;height:auto;display:block;margin:.6em 0}.figs>div{max-width:100%}.note{color:#57606a}
.kv th{width:12em}.filters label{margin-right:1em}#examples-table td:last-child{min-width:22em}
.reasons{margin:.2em 0 .8em 1.2em}.figs{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("examples-data").textContent);
  var PAGE = Number(document.getElementById("examples-table").dataset.page);
  var body = document.querySelector("#examples-table tbody");
  var count = document.getElementById("examples-count");
  var prev = document.getElementById("page-prev");
  var next = document.getElementById("page-next");
  var text = document.getElementById("filter-text");
  var fields = ["round", "label", "origin", "status"];
  var selects = {};
  var rows = data;
  var page = 0;
  fields.forEach(function (field) {
    var select = document.getElementById("filter-" + field);
    selects[field] = select;
    var values = Array.from(new Set(data.map(function (e) { return String(e[field]); })));
    values.sort(function (a, b) { return field === "round" ? a - b : a.localeCompare(b); });
    values.forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    });
    select.addEventListener("change", apply);
  });
  text.addEventListener("input", apply);
  prev.addEventListener("click", function () { page -= 1; render(); });
  next.addEventListener("click", function () { page += 1; render(); });
  function matches(e) {
    var needle = text.value.toLowerCase();
    return fields.every(function (f) { return selects[f].value === "" || String(e[f]) === selects[f].value; })
      && (needle === "" || e.text.toLowerCase().indexOf(needle) >= 0);
  }
  function apply() {
    rows = data.filter(matches);
    page = 0;
    render();
  }
  function render() {
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    var shown = rows.slice(page * PAGE, (page + 1) * PAGE);
    var fragment = document.createDocumentFragment();
    shown.forEach(function (e) {
      var tr = document.createElement("tr");
      [e.id, e.round, e.label, e.origin, e.status, e.why, e.call, e.prompt, e.text].forEach(function (value) {
        var td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    count.textContent = rows.length + " of " + data.length + " examples match" +
      (rows.length ? "; rows " + (page * PAGE + 1) + "–" + (page * PAGE + shown.length) +
       " (page " + (page + 1) + " of " + pages + ")" : "");
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  apply();
})();
"""


def render_html(data: ReportData, images: dict[str, bytes]) -> str:
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    title = f"distill report: {data.name}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">',  # ours: no double quote in it
        '<meta name="referrer" content="no-referrer">',
        f"<title>{html_text(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html_text(title)}</h1>",
        _nav(),
        _summary(data),
        _scores(data, images),
        _per_class(data, images),
        _confusion(data, images),
        _calibration(data, images),
        _deferral(data, images),
        _scope(data),
        _label_audit(data),
        _decisions(data),
        _examples(data),
        _guidelines(data),
        _cost(data),
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


SECTIONS = [
    ("summary", "Run summary"),
    ("scores", "Macro-F1 per round and against cost"),
    ("per-class", "Per-class F1 over rounds"),
    ("confusion", "Confusion matrix (best round, test)"),
    ("calibration", "Calibration (best round, test)"),
    ("deferral", "Deferral and cascade: coverage, accuracy, cost"),
    ("scope", "Out-of-scope"),
    ("label-audit", "Label audit"),
    ("decisions", "Decisions"),
    ("examples", "Examples"),
    ("guidelines", "Strategies and labeling guidelines"),
    ("cost", "Cost breakdown"),
]
_TITLES = dict(SECTIONS)


def _nav() -> str:
    return "<nav>" + "".join(f'<a href="#{key}">{html_text(title)}</a>' for key, title in SECTIONS) + "</nav>"


def _section(key: str, *body: str) -> str:
    return f'<section id="{key}"><h2>{html_text(_TITLES[key])}</h2>\n' + "\n".join(body) + "\n</section>"


def _table(table: Table, table_id: str, *, numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>" + "".join(_cell(value, i >= numeric_from) for i, value in enumerate(row)) + "</tr>" for row in table.rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _cell(value: str, numeric: bool) -> str:
    looks_numeric = numeric and value.replace(".", "").replace(",", "").replace("$", "").isdigit()
    return f'<td class="num">{html_text(value)}</td>' if looks_numeric else f"<td>{html_text(value)}</td>"


def _image(images: dict[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    encoded = base64.b64encode(images[name]).decode("ascii")
    return f'<img id="img-{name}" alt="{html_text(alt)}" src="data:image/png;base64,{encoded}">'


def _figures(*parts: str) -> str:
    """Figures (and a table) side by side where the page is wide enough."""
    return '<div class="figs">' + "".join(f"<div>{part}</div>" for part in parts if part) + "</div>"


def _note(text: str) -> str:
    return f'<p class="note">{html_text(text)}</p>'


def _summary(data: ReportData) -> str:
    rows = "".join(f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in tables.summary(data))
    return _section("summary", f'<table id="summary-table" class="kv"><tbody>{rows}</tbody></table>')


def _scores(data: ReportData, images: dict[str, bytes]) -> str:
    return _section(
        "scores",
        _note("Held-back validation alone decides early stopping and the best round; test is reported only."),
        _table(tables.rounds(data), "rounds-table", numeric_from=2),
        _figures(
            _image(images, "macro_f1_by_round", "macro-F1 per round"),
            _image(images, "macro_f1_by_cost", "macro-F1 against cumulative teacher cost"),
        ),
    )


def _per_class(data: ReportData, images: dict[str, bytes]) -> str:
    if not data.per_class_f1:
        return _section("per-class", _note("No round has been evaluated yet."))
    return _section(
        "per-class",
        _note(f"F1 per label on the {data.per_class_split} split, per round."),
        _figures(
            _image(images, "per_class_f1", "per-class F1 heatmap"), _table(tables.per_class(data), "per-class-table")
        ),
    )


def _confusion(data: ReportData, images: dict[str, bytes]) -> str:
    if data.confusion is None:
        return _section("confusion", _note("No test evaluation of the best round (no test split, or none yet)."))
    many = len(data.confusion.labels) > MATRIX_MAX_LABELS
    intro = (
        f"{len(data.confusion.labels)} labels: too many for a readable matrix; the most frequent confusions instead."
        if many
        else f"Round {data.best_round} on {data.confusion.n} test items; rows gold, columns predicted."
    )
    return _section(
        "confusion",
        _note(intro),
        _image(images, "confusion_matrix", "confusion matrix"),
        f"<h3>Top confusions (up to {tables.TOP_CONFUSIONS})</h3>",
        _table(tables.confusions(data), "confusions-table", numeric_from=2),
    )


def _calibration(data: ReportData, images: dict[str, bytes]) -> str:
    if data.calibration is None:
        return _section("calibration", _note("No test evaluation of the best round (no test split, or none yet)."))
    return _section(
        "calibration",
        _note(tables.ece_sentence(data.calibration)),
        _figures(
            _image(images, "reliability", "reliability diagram"), _table(tables.calibration(data), "calibration-table")
        ),
    )


def _deferral(data: ReportData, images: dict[str, bytes]) -> str:
    if data.deferral is None:
        return _section("deferral", _note(tables.NO_DEFERRAL))
    return _section(
        "deferral",
        *(_note(line) for line in tables.deferral_notes(data.deferral)),
        _figures(
            _image(images, "coverage_accuracy_cost", "coverage, accuracy and teacher cost"),
            _table(tables.deferral(data), "deferral-table"),
        ),
    )


def _scope(data: ReportData) -> str:
    if not data.scope:
        return _section("scope", _note(tables.NO_SCOPE))
    return _section("scope", _note(tables.SCOPE_NOTE), _table(tables.scope(data), "scope-table", numeric_from=2))


def _label_audit(data: ReportData) -> str:
    if not data.audits:
        return _section("label-audit", _note(tables.NO_AUDIT))
    shown = data.audits[:MAX_AUDITS_LISTED]
    cap = f" The first {len(shown):,} of {len(data.audits):,} are listed." if len(data.audits) > len(shown) else ""
    return _section(
        "label-audit",
        _note(tables.AUDIT_NOTE + cap),
        _table(tables.audit_counts(data), "audit-counts-table"),
        _table(tables.audits(data, MAX_AUDITS_LISTED), "audits-table", numeric_from=99),
    )


def _decisions(data: ReportData) -> str:
    items = []
    for r in data.rounds:
        reasons = "".join(f"<li>{html_text(reason)}</li>" for reason in r.reasons)
        decision = r.decision or f"not decided yet ({r.status})"
        items.append(
            f'<div class="decision" id="decision-{r.idx}"><h3>Round {r.idx}: {html_text(decision)}</h3>'
            f'<ul class="reasons">{reasons}</ul>'
            f"<p>next quotas: {html_text(tables.quotas(r.quotas))}</p></div>"
        )
    return _section("decisions", *items) if items else _section("decisions", _note("No round yet."))


def _examples(data: ReportData) -> str:
    examples = data.examples[-MAX_BROWSER_EXAMPLES:]
    cap = (
        _note(f"The browser holds the newest {MAX_BROWSER_EXAMPLES:,} of {len(data.examples):,} training examples.")
        if len(data.examples) > MAX_BROWSER_EXAMPLES
        else ""
    )
    filters = "".join(
        f'<label>{name} <select id="filter-{field}"><option value="">all</option></select></label>'
        for field, name in (("round", "round"), ("label", "label"), ("origin", "origin"), ("status", "kept/dropped"))
    )
    head = "".join(f"<th>{html_text(h)}</th>" for h in tables.EXAMPLE_HEADERS)
    return _section(
        "examples",
        _note(
            "Every training example with its provenance: the round, origin, the filters' verdicts, the "
            "teacher call and prompt that wrote it. Filter below; 100 rows per page."
        ),
        cap,
        _table(tables.example_counts(data), "example-counts-table", numeric_from=2),
        f'<div class="filters">{filters}<label>text <input id="filter-text" type="search"></label>'
        '<button id="page-prev" type="button">previous</button> <button id="page-next" type="button">next</button>'
        '</div><p id="examples-count" class="note"></p>',
        "<noscript><p>The example browser needs JavaScript; the Markdown report has the counts.</p></noscript>",
        f'<table id="examples-table" data-page="{PAGE_ROWS}"><thead><tr>{head}</tr></thead><tbody></tbody></table>',
        f'<script type="application/json" id="examples-data">{_json(_browser_rows(examples))}</script>',
    )


def _browser_rows(examples: list[ExampleProvenance]) -> list[dict[str, Any]]:
    keys = ("id", "round", "label", "origin", "status", "why", "call", "prompt", "text")
    return [dict(zip(keys, [e.id, e.round, *tables.example_row(e)[2:]], strict=True)) for e in examples]


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _guidelines(data: ReportData) -> str:
    if not data.guidelines:
        return _section("guidelines", _note("No strategies or labeling guidelines in this run."))
    return _section(
        "guidelines",
        _note("Labeling guidelines (scope pair:A|B) feed the PGKD prompts of both labels while proposed or approved."),
        _table(tables.guidelines(data), "guidelines-table", numeric_from=99),
    )


def _cost(data: ReportData) -> str:
    return _section(
        "cost",
        _note("Every journaled teacher call per prompt; a cache hit costs nothing."),
        _table(tables.cost(data), "cost-table"),
    )
