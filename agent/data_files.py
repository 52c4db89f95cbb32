"""Reading the user's data files, and an error that names the file, line and fix.

A labeled or unlabeled data file is JSONL (one object per line), CSV or TSV (by extension: ``.csv``,
``.tsv``; a header row names the columns), or a folder written by ``datasets``' ``save_to_disk``. The
spec's ``task.columns`` says which column holds the text and which the label (default ``text`` and
``label``). CSV line numbers are the ones an editor shows (the header is line 1; a quoted field may
span lines, and a row is named by the line it starts on); a ``datasets`` row is named by its number.

Every problem is one line, ``<spec field>: <file> line <n> <what is wrong> — <the fix>``, raised as
``DataFileError`` (an ``InputError``: the CLI prints it and exits 2, before anything is written).
Files are read as bytes and split on ``\\n`` only, so a line number is the one an editor shows (a JSON
string may hold U+2028, which ``str.splitlines`` would split on), an invalid byte is reported with its
line and column, a UTF-8 byte-order mark at the start (what Excel and many exporters write) is
accepted, and a line is never read past its length limit.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from agent import console
from agent.errors import InputError
from agent.store import content_hash
from generators.generation import OUT_OF_SCOPE
from generators.service_policy import Policy, PolicyError

if TYPE_CHECKING:
    from agent.spec import ColumnMap, DialogueRunSpec, RunSpec

# A training example is a message, not a document: students read 64–512 tokens. A line this long is a
# file that is not JSONL (one missing its line breaks, a pasted dump), and reading it whole costs memory.
MAX_LINE_CHARS = 100_000
# A UTF-8 character is at most 4 bytes, so a line of more bytes than this (BOM and \r\n included) is
# certainly over MAX_LINE_CHARS: readline() stops there instead of loading a line of any size.
_MAX_LINE_BYTES = 4 * MAX_LINE_CHARS + 5
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
LABELED_SHAPE = '{"text": "...", "label": "..."}'
TEXT_SHAPE = '{"text": "..."}'


class DataFileError(InputError, ValueError):
    """A data file the user must fix; one line naming the spec field, file, line and fix (exit 2).

    Also a ``ValueError``, so code written when the loaders raised ``ValueError`` still catches it.
    """


def read_user_text(path: Path, field_name: str) -> str:
    """The whole of a user's text file (a spec, a policy) as str; a UTF-8 BOM at the start is dropped.

    Missing, unreadable or non-UTF-8 files are a ``DataFileError`` naming the line and column of the
    first bad byte.
    """
    with _open(path, field_name) as handle:
        data = _read(handle, path, field_name)
    if data.startswith(_UTF16_BOMS):
        raise _utf16(path, field_name)
    body = data.removeprefix(_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = len(data) - len(body) + exc.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise _not_utf8(path, field_name, line, column, data[start]) from None


def text_lines(path: Path, field_name: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) for every line; each line checked for size and UTF-8."""
    with _open(path, field_name) as handle:
        number = 0
        while chunk := _readline(handle, path, field_name):
            number += 1
            yield number, _decode_line(chunk, number, path, field_name)


def jsonl_objects(path: Path, field_name: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line; ``field_name`` is the spec key that named the file."""
    for number, line in text_lines(path, field_name):
        if line.strip():
            yield number, _parse_json(line, number, path, field_name)


def read_jsonl(
    path: Path,
    labels: set[str] | None,
    field_name: str,
    warnings: list[str] | None = None,
    columns: ColumnMap | None = None,
) -> list[dict[str, str]]:
    """Rows {text, label} of a data file (JSONL, CSV, TSV or a ``datasets`` folder), each label one of
    ``labels`` (any label when None); ``columns`` names the file's text and label columns.

    A bad line is a ``DataFileError``; a file with no rows is a warning, appended to ``warnings`` or,
    when none is given, printed.
    """
    text_key, label_key = _keys(columns)
    shape = _shape(path, text_key, label_key)
    rows = []
    for where, row in _records(path, field_name, (text_key, label_key)):
        text = _string_field(row, text_key, where, shape)
        if not text.strip():
            raise DataFileError(f'{where} has an empty "{text_key}" — write the example\'s text, or delete the line')
        label = _string_field(row, label_key, where, shape)
        if labels is not None and label not in labels:
            raise DataFileError(_unknown_label(where, label, labels))
        rows.append({"text": text, "label": label})
    if not rows:
        _warn(
            warnings,
            f"{field_name}: {path} has no examples (it is empty or only blank lines) — add "
            f"{_some(path, shape)}, or remove {field_name} from the spec",
        )
    return rows


def _unknown_label(where: str, label: str, labels: set[str]) -> str:
    if label == OUT_OF_SCOPE:
        return (
            f"{where} has label {label!r}, the 'none of these' outcome — set task.out_of_scope: true to use it, "
            "or remove the line"
        )
    return (
        f"{where} has label {label!r}, not in task.labels — use one of {sorted(labels)}, "
        "or add the label to task.labels"
    )


def read_texts(
    path: Path, field_name: str, warnings: list[str] | None = None, columns: ColumnMap | None = None
) -> list[str]:
    """Distinct non-blank texts of a data file (JSONL of {"text": ...} lines, CSV, TSV or a ``datasets``
    folder); other columns are ignored."""
    text_key, _ = _keys(columns)
    shape = _shape(path, text_key, None)
    texts: dict[str, str] = {}
    for where, item in _records(path, field_name, (text_key,)):
        text = _string_field(item, text_key, where, shape)
        if text.strip():
            texts.setdefault(content_hash(text), text)
    if not texts:
        _warn(
            warnings,
            f"{field_name}: {path} has no texts (it is empty or only blank lines) — add {_some(path, shape)}, "
            f"or remove {field_name} from the spec",
        )
    return list(texts.values())


def read_policy(path: Path, field_name: str) -> Policy:
    """A service policy YAML file, validated; any problem is one ``DataFileError`` line."""
    try:
        data = yaml.safe_load(read_user_text(path, field_name))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise DataFileError(f"{field_name}: {path} is not valid YAML ({detail}) — fix the syntax") from None
    try:
        return Policy.from_dict(data, source=str(path))
    except PolicyError as exc:
        raise DataFileError(f"{field_name}: {' '.join(str(exc).split())}") from None


def check_data_files(spec: RunSpec | DialogueRunSpec) -> list[str]:
    """Read and validate every data file ``spec`` names, writing nothing; return the warnings.

    The first problem is raised as a ``DataFileError``, before a run directory exists.
    """
    from agent.spec import DialogueRunSpec, SimulatorTeacher

    warnings: list[str] = []
    if isinstance(spec, DialogueRunSpec):
        _check_dialogue(spec, warnings)
    else:
        _check_classification(spec, warnings)
    teacher = spec.teacher
    if isinstance(teacher, SimulatorTeacher):
        if teacher.pool is not None and not read_jsonl(teacher.pool, None, "teacher.pool", []):
            raise DataFileError(f"teacher.pool: {teacher.pool} has no items — the simulator answers from them")
        if teacher.policy is not None:
            read_policy(teacher.policy, "teacher.policy")
    return warnings


def _check_classification(spec: RunSpec, warnings: list[str]) -> None:
    from agent.classify.context import task_info

    task, columns = spec.task, spec.task.columns
    labels = set(task_info(spec).labels)  # out_of_scope is a valid label only when the task has it
    if task.seed_examples is not None:
        read_jsonl(task.seed_examples, labels, "task.seed_examples", warnings, columns)
    if task.validation is not None and not read_jsonl(task.validation, labels, "task.validation", [], columns):
        raise DataFileError(
            f"task.validation: {task.validation} has no examples — add labeled rows "
            f"{_shape(task.validation, columns.text, columns.label)}, or remove task.validation to have the "
            "teacher build one"
        )
    if task.test is not None:
        read_jsonl(task.test, labels, "task.test", warnings, columns)
    if task.unlabeled is not None:
        read_texts(task.unlabeled, "task.unlabeled", warnings, columns)


def _check_dialogue(spec: DialogueRunSpec, warnings: list[str]) -> None:
    policy = read_policy(spec.task.policy, "task.policy")
    file = spec.task.scenarios.file
    if file is None:
        return
    rows = read_jsonl(file, None, "task.scenarios.file", warnings)
    if rows and not any(policy.flow_for_intent(row["label"]) is not None for row in rows):
        warnings.append(
            f"task.scenarios.file: {file}: no line's label is an intent the policy "
            f"{spec.task.policy.name} covers, so no scenario comes from this file — label lines with its intents"
        )


def stratified_split(
    rows: list[dict[str, str]], fraction: float, rng: random.Random
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Split per label: ``fraction`` of each label's rows to the first part, at least one to each."""
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    first, second = [], []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        cut = min(max(1, round(len(items) * fraction)), max(1, len(items) - 1))
        first += items[:cut]
        second += items[cut:]
    return first, second


# -- records of any format: (where, row) ----------------------------------------------------------------


def _keys(columns: ColumnMap | None) -> tuple[str, str]:
    return ("text", "label") if columns is None else (columns.text, columns.label)


def _format(path: Path) -> str:
    if Path(path).is_dir():
        return "datasets"
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in (".csv", ".tsv") else "jsonl"


def _shape(path: Path, text_key: str, label_key: str | None) -> str:
    """How a good row looks in this file's format, for the fix part of a message."""
    keys = [text_key] if label_key is None else [text_key, label_key]
    kind = _format(path)
    if kind == "jsonl":
        return "{" + ", ".join(f'{json.dumps(k)}: "..."' for k in keys) + "}"
    columns = " and ".join(f'"{k}"' for k in keys)
    if kind == "datasets":
        return f"rows with {columns} column{'s' * (len(keys) > 1)}"
    return f"rows under a header naming {columns}"


def _some(path: Path, shape: str) -> str:
    """``shape`` as what to add: JSONL shapes are lines; the others already say rows."""
    return f"{shape} lines" if _format(path) == "jsonl" else shape


def _records(path: Path, field_name: str, needed: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(where, row) for every non-blank row; ``where`` names the spec field, file and line (or row)."""
    kind = _format(path)
    if kind == "datasets":
        yield from _saved_records(path, field_name, needed)
    elif kind in ("csv", "tsv"):
        yield from _csv_records(path, field_name, needed, "," if kind == "csv" else "\t")
    else:
        for number, row in jsonl_objects(path, field_name):
            yield f"{field_name}: {path} line {number}", row


def _csv_records(
    path: Path, field_name: str, needed: tuple[str, ...], delimiter: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a CSV/TSV file as {column: value}; the header (line 1) must name every ``needed`` column."""
    text = read_user_text(path, field_name)  # UTF-8 checked, with the bad byte's line; a BOM dropped
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in needed if name not in header]
        if header and missing:
            raise DataFileError(
                f"{field_name}: {path} line 1 (the header) has no column {missing[0]!r} (it has {header}) — "
                f"name the column {missing[0]!r}, or set task.columns to the header's names"
            )
        start = reader.line_num + 1
        for fields in reader:
            where, start = f"{field_name}: {path} line {start}", reader.line_num + 1
            if not any(value.strip() for value in fields):
                continue
            if len(fields) != len(header):
                raise DataFileError(
                    f"{where} has {len(fields)} fields, the header has {len(header)} — quote a field that "
                    f'holds the delimiter or a line break ("..."), with "" for a quote inside it'
                )
            longest = max(len(value) for value in fields)
            if longest > MAX_LINE_CHARS:
                raise DataFileError(
                    f"{where} has a field of {longest:,} characters, over the limit of {MAX_LINE_CHARS:,} — "
                    "a row holds one example, a message and not a document (is a closing quote missing?)"
                )
            yield where, dict(zip(header, fields, strict=True))
    except csv.Error as exc:
        raise DataFileError(
            f"{field_name}: {path} line {reader.line_num} is not valid {kind} ({exc}) — check the quotes: "
            'a quoted field ends with a quote, and a quote inside one is written ""'
        ) from None


def _saved_records(path: Path, field_name: str, needed: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a ``datasets`` folder written by ``save_to_disk`` (one split)."""
    from trainers.hf_data import NotADatasetFolder, looks_saved, read_saved

    if not looks_saved(path):
        raise DataFileError(
            f"{field_name}: {path} is a directory but not a `datasets` folder (no dataset_info.json) — give a "
            "JSONL, CSV or TSV file, or a folder written by Dataset.save_to_disk"
        )
    try:
        table = read_saved(path)
    except NotADatasetFolder as exc:
        raise DataFileError(
            f"{field_name}: {path} could not be read as a `datasets` folder ({exc}) — save it again "
            "with Dataset.save_to_disk"
        ) from None
    if table.splits:
        raise DataFileError(
            f"{field_name}: {path} holds a DatasetDict with splits {table.splits} — give one split's folder, "
            f"e.g. {path / table.splits[0]}"
        )
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise DataFileError(
            f"{field_name}: {path} has no column {missing[0]!r} (it has {table.columns}) — set task.columns to "
            "its column names"
        )
    for number, row in enumerate(table.rows, start=1):
        yield f"{field_name}: {path} row {number}", row


# -- one line at a time ----------------------------------------------------------------------------------


def _open(path: Path, field_name: str) -> IO[bytes]:
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise _io_error(exc, path, field_name) from None


def _read(handle: IO[bytes], path: Path, field_name: str) -> bytes:
    try:
        return handle.read()
    except OSError as exc:
        raise _io_error(exc, path, field_name) from None


def _readline(handle: IO[bytes], path: Path, field_name: str) -> bytes:
    try:
        return handle.readline(_MAX_LINE_BYTES)
    except OSError as exc:
        raise _io_error(exc, path, field_name) from None


def _io_error(exc: OSError, path: Path, field_name: str) -> DataFileError:
    if isinstance(exc, FileNotFoundError):
        return DataFileError(f"{field_name}: file {path} not found — check the path")
    if isinstance(exc, IsADirectoryError):
        return DataFileError(f"{field_name}: {path} is a directory — give the path of a file in it")
    if isinstance(exc, PermissionError):
        return DataFileError(f"{field_name}: cannot read {path} (permission denied) — make it readable")
    return DataFileError(f"{field_name}: cannot read {path} ({exc.strerror or exc}) — check the file and the disk")


def _decode_line(chunk: bytes, number: int, path: Path, field_name: str) -> str:
    if len(chunk) == _MAX_LINE_BYTES and not chunk.endswith(b"\n"):
        raise _too_long(path, field_name, number, None)
    if number == 1 and chunk.startswith(_UTF16_BOMS):
        raise _utf16(path, field_name)
    body = chunk.removeprefix(_BOM) if number == 1 else chunk
    try:
        line = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = len(chunk) - len(body) + exc.start
        raise _not_utf8(path, field_name, number, offset + 1, chunk[offset]) from None
    line = line.removesuffix("\n").removesuffix("\r")
    if len(line) > MAX_LINE_CHARS:
        raise _too_long(path, field_name, number, len(line))
    return line


def _parse_json(line: str, number: int, path: Path, field_name: str) -> Any:
    where = f"{field_name}: {path} line {number}"
    if line.startswith("\ufeff"):
        raise DataFileError(f"{where} starts with a byte-order mark (U+FEFF) — delete it (was a file pasted in?)")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{where} is not JSON ({exc.msg} at column {exc.colno}) — write one JSON object per line"
        ) from None
    except (ValueError, RecursionError) as exc:  # digits beyond int's limit; nesting beyond the stack
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise DataFileError(f"{where} is not usable JSON ({reason}) — write one flat JSON object per line") from None


def _string_field(row: Any, key: str, where: str, shape: str) -> str:
    """``row[key]`` when ``row`` is an object and the value a string that UTF-8 can hold."""
    if not isinstance(row, dict):
        raise DataFileError(f"{where} is a JSON {_json_type(row)}, not an object — write {shape}")
    value = row.get(key)
    if key not in row:
        raise DataFileError(f'{where} has no "{key}" string — write {shape}')
    if not isinstance(value, str):
        raise DataFileError(f'{where} has "{key}" as a JSON {_json_type(value)}, not a string — write {shape}')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud83d" alone: valid JSON escapes, but no text can hold half a character
        raise DataFileError(
            f'{where} has a lone surrogate escape in "{key}" (half of a \\uXXXX pair) — write the whole character'
        ) from None
    return value


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _warn(warnings: list[str] | None, message: str) -> None:
    if warnings is None:
        console.warn(message)
    else:
        warnings.append(message)


def _not_utf8(path: Path, field_name: str, line: int, column: int, byte: int) -> DataFileError:
    return DataFileError(
        f"{field_name}: {path} line {line} is not valid UTF-8 (byte 0x{byte:02x} at byte column {column}) — "
        "save the file as UTF-8"
    )


def _utf16(path: Path, field_name: str) -> DataFileError:
    return DataFileError(f"{field_name}: {path} line 1 is UTF-16 (it starts with a UTF-16 BOM) — save it as UTF-8")


def _too_long(path: Path, field_name: str, number: int, length: int | None) -> DataFileError:
    size = f"is {length:,} characters, over" if length is not None else "is longer than"
    return DataFileError(
        f"{field_name}: {path} line {number} {size} the limit of {MAX_LINE_CHARS:,} characters — a line holds "
        "one example, a message and not a document (a line this long is usually a file without line breaks)"
    )
