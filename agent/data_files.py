"""Reading the user's data files: one object per line, and an error that names the file, line and fix.

Every problem is one line, ``<spec field>: <file> line <n> <what is wrong> — <the fix>``, raised as
``DataFileError`` (an ``InputError``: the CLI prints it and exits 2, before anything is written).
Files are read as bytes and split on ``\\n`` only, so a line number is the one an editor shows (a JSON
string may hold U+2028, which ``str.splitlines`` would split on), an invalid byte is reported with its
line and column, a UTF-8 byte-order mark at the start (what Excel and many exporters write) is
accepted, and a line is never read past its length limit.
"""

from __future__ import annotations

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
from generators.service_policy import Policy, PolicyError

if TYPE_CHECKING:
    from agent.spec import DialogueRunSpec, RunSpec

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
    path: Path, labels: set[str] | None, field_name: str, warnings: list[str] | None = None
) -> list[dict[str, str]]:
    """Rows {text, label} of a JSONL file, each label one of ``labels`` (any label when None).

    A bad line is a ``DataFileError``; a file with no rows is a warning, appended to ``warnings`` or,
    when none is given, printed.
    """
    rows = []
    for number, row in jsonl_objects(path, field_name):
        where = f"{field_name}: {path} line {number}"
        text = _string_field(row, "text", where, LABELED_SHAPE)
        if not text.strip():
            raise DataFileError(f'{where} has an empty "text" — write the example\'s text, or delete the line')
        label = _string_field(row, "label", where, LABELED_SHAPE)
        if labels is not None and label not in labels:
            raise DataFileError(
                f"{where} has label {label!r}, not in task.labels — use one of {sorted(labels)}, "
                "or add the label to task.labels"
            )
        rows.append({"text": text, "label": label})
    if not rows:
        _warn(
            warnings,
            f"{field_name}: {path} has no examples (it is empty or only blank lines) — add {LABELED_SHAPE} "
            f"lines, or remove {field_name} from the spec",
        )
    return rows


def read_texts(path: Path, field_name: str, warnings: list[str] | None = None) -> list[str]:
    """Distinct non-blank texts of a JSONL file of {"text": ...} lines (other keys are ignored)."""
    texts: dict[str, str] = {}
    for number, item in jsonl_objects(path, field_name):
        text = _string_field(item, "text", f"{field_name}: {path} line {number}", TEXT_SHAPE)
        if text.strip():
            texts.setdefault(content_hash(text), text)
    if not texts:
        _warn(
            warnings,
            f"{field_name}: {path} has no texts (it is empty or only blank lines) — add {TEXT_SHAPE} lines, "
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
    task, labels = spec.task, set(spec.task.label_names)
    if task.seed_examples is not None:
        read_jsonl(task.seed_examples, labels, "task.seed_examples", warnings)
    if task.validation is not None and not read_jsonl(task.validation, labels, "task.validation", []):
        raise DataFileError(
            f"task.validation: {task.validation} has no examples — add labeled lines {LABELED_SHAPE}, "
            "or remove task.validation to have the teacher build one"
        )
    if task.test is not None:
        read_jsonl(task.test, labels, "task.test", warnings)
    if task.unlabeled is not None:
        read_texts(task.unlabeled, "task.unlabeled", warnings)


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
