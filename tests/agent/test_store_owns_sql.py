"""The run store owns every SQL statement: none may appear in product code outside ``agent/store/``
(and the response cache, ``generators/cache.py``, which is a store of its own).

The check reads the syntax tree of every module under the product packages and flags string literals
that start like SQL, and calls that run SQL or open a database (``.execute(``, ``.executemany(``,
``.executescript(``, ``sqlite3.connect``). Tests are exempt: they may inspect a run's file directly.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "generators", "trainers", "simulator", "bench")
OWNERS = ("agent/store/", "generators/cache.py")

# Upper-case keywords are SQL wherever they open a literal; lower-case text only counts when it has
# the shape of a statement, so that prose ("Select the best round", "update the cache") is not flagged.
_SQL = re.compile(
    r"""\s*(?:
        (?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|WITH|REPLACE|BEGIN|COMMIT|ROLLBACK|VACUUM|ATTACH)\b
      | (?i:
            select\b.*\bfrom\b
          | insert\s+(?:or\s+\w+\s+)?into\b
          | update\s+\w+\s+set\b
          | delete\s+from\b
          | create\s+(?:unique\s+)?(?:table|index|view|trigger)\b
          | (?:alter|drop)\s+(?:table|index|view|trigger)\b
          | pragma\s+\w+
          | with\s+\w+\s+as\s*\(
        )
    )""",
    re.X | re.S,
)
_RUNS_SQL = frozenset({"execute", "executemany", "executescript"})
# ``execute`` is also an ordinary method name (a run kind's ``execute(spec, …)``): it counts as running
# SQL when the receiver is named like a connection or cursor, or the statement is text built in place.
_DB_NAME = re.compile(r"(?:^|_)(?:db|conn|connection|cursor|cur|sqlite|database)\d*$", re.I)


def _looks_like_sql_call(call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    receiver = call.func.value
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    first = call.args[0] if call.args else None
    built_text = isinstance(first, ast.JoinedStr | ast.BinOp) or (
        isinstance(first, ast.Constant) and isinstance(first.value, str)
    )
    return call.func.attr != "execute" or built_text or bool(_DB_NAME.search(name))


def sql_violations(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: why`` for every SQL literal or SQL call in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        # An f-string's literal parts are Constants too, so ``f"DELETE FROM {table}"`` is caught here.
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value):
            found.append(f"{filename}:{node.lineno}: SQL literal {node.value.strip()[:50]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr in _RUNS_SQL and _looks_like_sql_call(node):
                found.append(f"{filename}:{node.lineno}: .{func.attr}() call")
            elif func.attr == "connect" and isinstance(func.value, ast.Name) and func.value.id == "sqlite3":
                found.append(f"{filename}:{node.lineno}: sqlite3.connect() call")
    return sorted(set(found), key=lambda line: int(line.split(":")[1]))


def tree_violations(root: Path) -> list[str]:
    """Violations in every product module under ``root`` outside the modules that own the SQL."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if not relative.startswith(OWNERS):
                found += sql_violations(path.read_text(encoding="utf-8"), relative)
    return found


def test_no_sql_outside_the_store() -> None:
    violations = tree_violations(ROOT)
    assert not violations, "SQL outside agent/store/ — add a named store method instead:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    "line",
    [
        'db.execute("SELECT 1")',
        'rows = store.fetch("SELECT id FROM examples WHERE split=?")',
        'q = "INSERT OR IGNORE INTO plans VALUES (1)"',
        'q = f"DELETE FROM answers WHERE condition IN ({marks})"',
        'q = "select text from examples"',
        'q = "  update rounds set status=?"',
        'q = "PRAGMA user_version"',
        'q = "WITH t AS (SELECT 1) SELECT * FROM t"',
        "conn = sqlite3.connect(path)",
        "cursor.executemany(sql, rows)",
        "self._db.execute(statement)",
        "conn.execute(sql, params)",
        'runner.execute("VACUUM")',
    ],
)
def test_detector_flags_a_planted_statement(line: str) -> None:
    violations = sql_violations(f"x = 1\n{line}\n", "agent/planted.py")
    assert violations and all(v.startswith("agent/planted.py:2: ") for v in violations)


@pytest.mark.parametrize(
    "line",
    [
        '"""Select the best round by held-back F1, then update the cache."""',
        'message = "with the round 0 student"',
        'note = "delete the run folder to start again"',
        "pool.submit(job)",
        "client.connect(url)",
        "outcome = _kind(spec).execute(spec, run_dir, store, options)",
        "pool.execute(job, retries)",
    ],
)
def test_detector_leaves_prose_and_other_calls_alone(line: str) -> None:
    assert sql_violations(line) == []


def test_tree_scan_exempts_the_store_and_names_file_and_line(tmp_path: Path) -> None:
    planted = 'def rows(db):\n    return db.query("SELECT * FROM rounds")\n'
    for relative in ("agent/classify/leak.py", "agent/store/rounds.py", "generators/cache.py", "tests/test_x.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(planted, encoding="utf-8")
    assert tree_violations(tmp_path) == ["agent/classify/leak.py:2: SQL literal 'SELECT * FROM rounds'"]
