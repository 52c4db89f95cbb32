"""Data file loaders: every bad input is one InputError line naming the field, file, line and fix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent import console
from agent.active import read_unlabeled
from agent.data_files import (
    MAX_LINE_CHARS,
    DataFileError,
    check_data_files,
    read_jsonl,
    read_texts,
    read_user_text,
)
from agent.errors import InputError
from agent.spec import ColumnMap, load_any_spec
from agent.store import content_hash

LABELS = {"a", "b"}
FIELD = "task.seed_examples"
BOM = b"\xef\xbb\xbf"
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: bytes, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, "one line"
    return message


def row(text: str, label: str = "a") -> bytes:
    return json.dumps({"text": text, "label": label}).encode()


# -- example-based: one test per kind of bad input ---------------------------------------------------------


def test_data_file_error_is_an_input_error_that_exits_2() -> None:
    error = DataFileError("x")
    assert isinstance(error, InputError) and error.exit_code == 2 and error.problems == ["x"]


def test_a_utf8_bom_is_accepted_at_the_start_only(tmp_path: Path) -> None:
    path = write(tmp_path, BOM + row("hello") + b"\r\n" + row("bye", "b") + b"\r\n")
    assert read_jsonl(path, LABELS, FIELD) == [{"text": "hello", "label": "a"}, {"text": "bye", "label": "b"}]
    path = write(tmp_path, row("hello") + b"\n" + BOM + row("bye") + b"\n")
    message = error_of(lambda: read_jsonl(path, LABELS, FIELD))
    assert f"{FIELD}: {path} line 2 starts with a byte-order mark" in message


def test_invalid_utf8_names_line_and_byte_column_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, row("fine") + b"\n\n" + b'{"text": "caf\xe9", "label": "a"}\n')
    message = error_of(lambda: read_jsonl(path, LABELS, FIELD))
    assert message == (
        f"{FIELD}: {path} line 3 is not valid UTF-8 (byte 0xe9 at byte column 14) — save the file as UTF-8"
    )
    bom_first = write(tmp_path, BOM + b'{"text": "\xff"}\n', "bom.jsonl")
    assert "line 1 is not valid UTF-8 (byte 0xff at byte column 14)" in error_of(
        lambda: read_unlabeled(bom_first, "task.unlabeled")
    )


def test_utf16_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, '{"text": "x", "label": "a"}\n'.encode("utf-16"))
    assert "line 1 is UTF-16" in error_of(lambda: read_jsonl(path, LABELS, FIELD))
    assert "save it as UTF-8" in error_of(lambda: read_user_text(path, "spec"))


def test_an_empty_file_is_a_warning_not_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    printed: list[str] = []
    monkeypatch.setattr(console, "warn", printed.append)
    for content in (b"", b"\n  \n\t\r\n", BOM + b"\n"):
        path = write(tmp_path, content)
        warnings: list[str] = []
        assert read_jsonl(path, LABELS, FIELD, warnings) == [] and len(warnings) == 1
        assert warnings[0].startswith(f"{FIELD}: {path} has no examples") and "remove task.seed_examples" in warnings[0]
        assert read_jsonl(path, LABELS, FIELD) == [] and printed[-1] == warnings[0]
        assert read_unlabeled(path) == [] and "task.unlabeled" in printed[-1] and "has no texts" in printed[-1]
    assert read_jsonl(write(tmp_path, row("x")), LABELS, FIELD, warnings := []) and warnings == []


def test_an_over_long_line_fails_with_the_limit_and_why(tmp_path: Path) -> None:
    megabyte = write(tmp_path, row("fine") + b"\n" + row("x" * 1_000_000) + b"\n")
    message = error_of(lambda: read_jsonl(megabyte, LABELS, FIELD))
    assert f"{megabyte} line 2 is longer than the limit of 100,000 characters" in message
    assert "one example" in message
    overhead = len(row(""))
    at_limit = write(tmp_path, row("y" * (MAX_LINE_CHARS - overhead)) + b"\r\n")
    assert read_jsonl(at_limit, LABELS, FIELD)[0]["text"] == "y" * (MAX_LINE_CHARS - overhead)
    wide = "é" * (MAX_LINE_CHARS - overhead + 1)  # two bytes each: counted in characters, not bytes
    over = write(tmp_path, json.dumps({"text": wide, "label": "a"}, ensure_ascii=False).encode())
    assert "line 1 is 100,001 characters, over the limit" in error_of(lambda: read_jsonl(over, LABELS, FIELD))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"[1, 2]", 'line 2 is a JSON array, not an object — write {"text": "...", "label": "..."}'),
        (b"42", "line 2 is a JSON number, not an object"),
        (b'"just text"', "line 2 is a JSON string, not an object"),
        (b"null", "line 2 is a JSON null, not an object"),
        (b'{"text": 5, "label": "a"}', 'line 2 has "text" as a JSON number, not a string'),
        (b'{"text": "x", "label": true}', 'line 2 has "label" as a JSON boolean, not a string'),
        (b'{"text": "x", "label": ["a"]}', 'line 2 has "label" as a JSON array, not a string'),
        (b'{"text": "x"}', 'line 2 has no "label" string'),
        (b'{"label": "a"}', 'line 2 has no "text" string'),
        (b'{"text": "  ", "label": "a"}', 'line 2 has an empty "text"'),
        (b'{"text": "x", "label": "c"}', "line 2 has label 'c', not in task.labels — use one of ['a', 'b']"),
        (b'{"text": "x", "label": "a"', "line 2 is not JSON (Expecting ',' delimiter at column 27)"),
        (b'{"text": "\\ud83d", "label": "a"}', 'line 2 has a lone surrogate escape in "text"'),
        (b"[" * 100_000, "line 2 is not usable JSON (nested too deeply)"),
        (b'{"text": "x", "label": "a", "n": ' + b"9" * 5000 + b"}", "line 2 is not usable JSON (Exceeds the limit"),
    ],
)
def test_wrong_shapes_name_file_line_and_expected_shape(tmp_path: Path, line: bytes, expected: str) -> None:
    path = write(tmp_path, row("fine") + b"\n" + line + b"\n" + row("after") + b"\n")
    message = error_of(lambda: read_jsonl(path, LABELS, FIELD))
    assert message.startswith(f"{FIELD}: {path} line 2 ") and expected in message


def test_unlabeled_wrong_shapes(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"text": "ok"}\n{"text": 3}\n')
    assert 'line 2 has "text" as a JSON number, not a string — write {"text": "..."}' in error_of(
        lambda: read_unlabeled(path)
    )
    path = write(tmp_path, b'{"text": "ok"}\n["text"]\n')
    assert "task.unlabeled: " in error_of(lambda: read_unlabeled(path)) and "line 2 is a JSON array" in error_of(
        lambda: read_unlabeled(path)
    )


def test_a_json_string_may_hold_line_separators(tmp_path: Path) -> None:
    text = "one\u2028two\x85three\x0cfour"
    path = write(tmp_path, json.dumps({"text": text, "label": "b"}, ensure_ascii=False).encode() + b"\n")
    assert read_jsonl(path, LABELS, FIELD) == [{"text": text, "label": "b"}]


def test_missing_directory_and_unreadable_files_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.jsonl"
    assert error_of(lambda: read_jsonl(missing, LABELS, "task.test")) == (
        f"task.test: file {missing} not found — check the path"
    )
    assert error_of(lambda: read_unlabeled(tmp_path)) == (
        f"task.unlabeled: {tmp_path} is a directory but not a `datasets` folder (no dataset_info.json) — give a "
        "JSONL, CSV or TSV file, or a folder written by Dataset.save_to_disk"
    )
    assert "is a directory" in error_of(lambda: read_user_text(tmp_path, "spec"))
    locked = write(tmp_path, row("x"))

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert error_of(lambda: read_jsonl(locked, LABELS, FIELD)) == (
        f"{FIELD}: cannot read {locked} (permission denied) — make it readable"
    )


def test_read_user_text_accepts_a_bom_and_names_the_bad_line(tmp_path: Path) -> None:
    spec = write(tmp_path, BOM + b"name: x\r\ntask:\n  description: caf\xc3\xa9\n", "spec.yaml")
    assert read_user_text(spec, "spec") == "name: x\r\ntask:\n  description: café\n"
    bad = write(tmp_path, b"name: x\ntask:\n  description: caf\xe9\n", "bad.yaml")
    assert error_of(lambda: read_user_text(bad, "spec")) == (
        f"spec: {bad} line 3 is not valid UTF-8 (byte 0xe9 at byte column 19) — save the file as UTF-8"
    )
    bom_bad = write(tmp_path, BOM + b"a\xff", "bom.yaml")
    assert "line 1 is not valid UTF-8 (byte 0xff at byte column 5)" in error_of(lambda: read_user_text(bom_bad, "s"))


# -- check_data_files: every file a spec names, read before a run directory exists ----------------------------


def classification_spec(tmp_path: Path, files: dict[str, bytes], **task: Any) -> Path:
    for name, content in files.items():
        write(tmp_path, content, name)
    data = {
        "name": "tiny",
        "task": {"description": "bank messages", "labels": [{"name": "a"}, {"name": "b"}], **task},
        "teacher": {"provider": "simulator", "pool": "pool.jsonl"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


GOOD_FILES = {
    "pool.jsonl": row("pool a") + b"\n" + row("pool b", "b") + b"\n",
    "seed.jsonl": BOM + row("seed a") + b"\n",
    "val.jsonl": row("val a") + b"\n" + row("val a2") + b"\n" + row("val b", "b") + b"\n" + row("val b2", "b"),
    "test.jsonl": b"",
    "unlabeled.jsonl": b'{"text": "some text"}\n',
}
GOOD_TASK = {
    "seed_examples": "seed.jsonl",
    "validation": "val.jsonl",
    "test": "test.jsonl",
    "unlabeled": "unlabeled.jsonl",
}


def test_check_data_files_reads_every_file_and_writes_nothing(tmp_path: Path) -> None:
    spec = load_any_spec(classification_spec(tmp_path, GOOD_FILES, **GOOD_TASK))
    before = sorted(p.name for p in tmp_path.iterdir())
    warnings = check_data_files(spec)
    assert [w.split(":")[0] for w in warnings] == ["task.test"] and "has no examples" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("seed.jsonl", row("x", "zzz"), "task.seed_examples: {dir}/seed.jsonl line 1 has label 'zzz'"),
        ("val.jsonl", b"\n\n", "task.validation: {dir}/val.jsonl has no examples"),
        ("test.jsonl", b"[]", "task.test: {dir}/test.jsonl line 1 is a JSON array"),
        ("unlabeled.jsonl", b'{"text": "\xc3"}', "task.unlabeled: {dir}/unlabeled.jsonl line 1 is not valid UTF-8"),
        ("pool.jsonl", b"\n", "teacher.pool: {dir}/pool.jsonl has no items"),
        ("pool.jsonl", b'{"text": "t", "label": 1}', 'teacher.pool: {dir}/pool.jsonl line 1 has "label" as a JSON'),
    ],
)
def test_check_data_files_names_the_spec_field(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    spec = load_any_spec(classification_spec(tmp_path, {**GOOD_FILES, name: content}, **GOOD_TASK))
    assert error_of(lambda: check_data_files(spec)).startswith(expected.format(dir=tmp_path))


def dialogue_spec(tmp_path: Path, policy: bytes, scenarios: bytes) -> Path:
    write(tmp_path, policy, "policy.yaml")
    write(tmp_path, scenarios, "messages.jsonl")
    write(tmp_path, row("pool text"), "pool.jsonl")
    data = {
        "name": "talk",
        "task": {
            "kind": "dialogue",
            "description": "support replies",
            "policy": "policy.yaml",
            "scenarios": {"source": "file", "file": "messages.jsonl"},
        },
        "teacher": {"provider": "simulator", "pool": "pool.jsonl", "policy": "policy.yaml"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_data_files_for_a_dialogue_spec(tmp_path: Path) -> None:
    policy = (ROOT / "examples" / "support" / "policy.yaml").read_bytes()
    messages = (ROOT / "examples" / "support" / "customer_messages.jsonl").read_bytes()
    assert check_data_files(load_any_spec(dialogue_spec(tmp_path, policy, messages))) == []
    unknown = load_any_spec(dialogue_spec(tmp_path, policy, row("hi", "no_such_intent")))
    assert "no line's label is an intent the policy" in check_data_files(unknown)[0]
    broken_yaml = load_any_spec(dialogue_spec(tmp_path, b"flows: [\n", messages))
    assert error_of(lambda: check_data_files(broken_yaml)).startswith(f"task.policy: {tmp_path}/policy.yaml is not")
    not_utf8 = load_any_spec(dialogue_spec(tmp_path, policy.replace(b"a", b"\xe1", 1), messages))
    assert "task.policy: " in error_of(lambda: check_data_files(not_utf8))
    bad_line = load_any_spec(dialogue_spec(tmp_path, policy, messages + b"\n{oops\n"))
    message = error_of(lambda: check_data_files(bad_line))
    oops = (messages + b"\n").count(b"\n") + 1
    assert message.startswith(f"task.scenarios.file: {tmp_path}/messages.jsonl line {oops} is not JSON")


def test_the_shipped_examples_pass_the_check() -> None:
    for spec in sorted((ROOT / "examples").glob("*/spec*.yaml")):
        check_data_files(load_any_spec(spec))


# -- CSV, TSV and `datasets` folders, with a column mapping ---------------------------------------------------

COLUMNS = ColumnMap(text="utterance", label="intent")


def test_csv_and_tsv_rows_with_mapped_columns(tmp_path: Path) -> None:
    csv_file = write(
        tmp_path,
        BOM + b'id,utterance,intent\r\n1,"hello, world",a\r\n\r\n2,"two\nlines ""quoted""",b\r\n',
        "data.csv",
    )
    assert read_jsonl(csv_file, LABELS, FIELD, [], COLUMNS) == [
        {"text": "hello, world", "label": "a"},
        {"text": 'two\nlines "quoted"', "label": "b"},
    ]
    tsv_file = write(tmp_path, b"utterance\tintent\nfirst\ta\nsecond, with a comma\tb\n", "data.TSV")
    assert read_jsonl(tsv_file, LABELS, FIELD, [], COLUMNS) == [
        {"text": "first", "label": "a"},
        {"text": "second, with a comma", "label": "b"},
    ]
    assert read_texts(tsv_file, "task.unlabeled", [], COLUMNS) == ["first", "second, with a comma"]
    plain = write(tmp_path, b"text,label\nx,a\n", "plain.csv")  # default columns: text and label
    assert read_jsonl(plain, LABELS, FIELD) == [{"text": "x", "label": "a"}]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # A quoted field spans lines 2-3: the bad row after it is named by the line an editor shows.
        (b'utterance,intent\n"one\ntwo",a\nthree,zzz\n', "line 4 has label 'zzz', not in task.labels"),
        (b"utterance,intent\nok,a\n,b\n", 'line 3 has an empty "utterance"'),
        (b"utterance,intent\nok,a\nx,a,extra\n", "line 3 has 3 fields, the header has 2 — quote a field"),
        (b"utterance,intent\nonly text\n", "line 2 has 1 fields, the header has 2"),
        (b"text,label\nx,a\n", "line 1 (the header) has no column 'utterance' (it has ['text', 'label'])"),
        (b'utterance,intent\nok,a\n"unclosed,a\n', "is not valid CSV (unexpected end of data)"),
        (b'utterance,intent\nok,a\n"a"b,a\n', "line 3 is not valid CSV ("),
        (b"utterance,intent\nok,a\ncaf\xe9,a\n", "line 3 is not valid UTF-8 (byte 0xe9 at byte column 4)"),
        (b"utterance,intent\n" + b"w" * (MAX_LINE_CHARS + 1) + b",a\n", "line 2 has a field of 100,001 characters"),
    ],
)
def test_bad_csv_rows_name_the_line_the_user_sees(tmp_path: Path, content: bytes, expected: str) -> None:
    path = write(tmp_path, content, "data.csv")
    message = error_of(lambda: read_jsonl(path, LABELS, FIELD, [], COLUMNS))
    assert message.startswith(f"{FIELD}: {path} ") and expected in message, message


def test_an_empty_csv_warns_like_an_empty_jsonl(tmp_path: Path) -> None:
    warnings: list[str] = []
    path = write(tmp_path, b"utterance,intent\n\n", "data.csv")
    assert read_jsonl(path, LABELS, FIELD, warnings, COLUMNS) == []
    assert warnings == [
        f"{FIELD}: {path} has no examples (it is empty or only blank lines) — add rows under a header naming "
        '"utterance" and "intent", or remove task.seed_examples from the spec'
    ]


def test_a_datasets_folder_with_class_label_names(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"utterance": Value("string"), "intent": ClassLabel(names=["a", "b"])})
    data = Dataset.from_dict({"utterance": ["hi there", "bye"], "intent": [1, 0]}, features=features)
    data.save_to_disk(str(tmp_path / "one"))
    assert read_jsonl(tmp_path / "one", LABELS, FIELD, [], COLUMNS) == [
        {"text": "hi there", "label": "b"},
        {"text": "bye", "label": "a"},
    ]
    assert read_texts(tmp_path / "one", "task.unlabeled", [], COLUMNS) == ["hi there", "bye"]
    assert "has no column 'text' (it has ['utterance', 'intent']) — set task.columns" in error_of(
        lambda: read_jsonl(tmp_path / "one", LABELS, FIELD)
    )
    DatasetDict({"train": data, "test": data}).save_to_disk(str(tmp_path / "both"))
    assert (
        f"holds a DatasetDict with splits ['test', 'train'] — give one split's folder, e.g. {tmp_path}/both/test"
        in (error_of(lambda: read_jsonl(tmp_path / "both", LABELS, FIELD, [], COLUMNS)))
    )
    assert len(read_jsonl(tmp_path / "both" / "train", LABELS, FIELD, [], COLUMNS)) == 2
    bad = Dataset.from_dict({"utterance": ["fine", "  "], "intent": ["a", "a"]})
    bad.save_to_disk(str(tmp_path / "bad"))
    assert error_of(lambda: read_jsonl(tmp_path / "bad", LABELS, FIELD, [], COLUMNS)) == (
        f'{FIELD}: {tmp_path}/bad row 2 has an empty "utterance" — write the example\'s text, or delete the line'
    )


def test_check_data_files_reads_csv_tsv_and_datasets_folders(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_dict({"utterance": ["v a", "v a2", "v b", "v b2"], "intent": ["a", "a", "b", "b"]}).save_to_disk(
        str(tmp_path / "val")
    )
    files = {
        **GOOD_FILES,
        "seed.csv": b"utterance,intent\nseed a,a\n",
        "test.tsv": b"utterance\tintent\nt b\tb\n",
        "unlabeled.csv": b"utterance\nsome text\n",
    }
    task = {"seed_examples": "seed.csv", "validation": "val", "test": "test.tsv", "unlabeled": "unlabeled.csv"}
    spec_path = classification_spec(tmp_path, files, **task, columns={"text": "utterance", "label": "intent"})
    assert check_data_files(load_any_spec(spec_path)) == []
    (tmp_path / "test.tsv").write_bytes(b"utterance\tintent\nt b\tb\nt c\tc\n")
    assert error_of(lambda: check_data_files(load_any_spec(spec_path))).startswith(
        f"task.test: {tmp_path}/test.tsv line 3 has label 'c', not in task.labels"
    )


# -- property: random and hostile bytes --------------------------------------------------------------------


def judge_labeled(value: Any) -> dict[str, str] | None:
    """The row a valid labeled line holds, or None."""
    ok = isinstance(value, dict) and isinstance(value.get("text"), str) and isinstance(value.get("label"), str)
    if not ok or not value["text"].strip() or value["label"] not in LABELS or not encodable(value["text"]):
        return None
    return {"text": value["text"], "label": value["label"]}


def judge_unlabeled(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict) and isinstance(value.get("text"), str) and encodable(value["text"]):
        return {"text": value["text"]}
    return None


def encodable(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def expected_outcome(data: bytes, judge: Callable[[Any], dict[str, str] | None]) -> tuple[list[Any], int | None]:
    """An independent reading of the whole file: (valid rows, first bad line number or None)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    rows: list[Any] = []
    for number, raw in enumerate(lines, start=1):
        raw = raw[len(BOM) :] if number == 1 and raw.startswith(BOM) else raw
        try:
            text = raw.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError:
            return rows, number
        if len(text) > MAX_LINE_CHARS:
            return rows, number
        if not text.strip():
            continue
        try:
            parsed = judge(json.loads(text))
        except (ValueError, RecursionError):
            return rows, number
        if parsed is None:
            return rows, number
        rows.append(parsed)
    return rows, None


texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(str.strip)
valid_lines = st.builds(
    lambda text, label, ascii_only, extra: json.dumps(
        {"text": text, "label": label, **extra}, ensure_ascii=ascii_only
    ).encode(),
    texts,
    st.sampled_from(sorted(LABELS)),
    st.booleans(),
    st.dictionaries(st.sampled_from(["id", "note"]), st.integers() | st.text(max_size=5), max_size=2),
)
hostile_lines = st.sampled_from(
    [
        b"",
        b"   \t",
        b"\r",
        b"[1, 2]",
        b"42",
        b'"text"',
        b"null",
        b'{"text": 5, "label": "a"}',
        b'{"text": "x", "label": 3}',
        b'{"text": "x", "label": "zzz"}',
        b'{"text": "x"}',
        b'{"text": "", "label": "a"}',
        b"{",
        b'{"text": "\xff", "label": "a"}',
        b'{"text": "caf\xc3", "label": "a"}',
        b'{"text": "\\udc00", "label": "a"}',
        b'{"text": "x", "label": "a"} trailing',
        BOM + b'{"text": "x", "label": "a"}',
        b"\xff\xfe{",
        b"[" * 5000,
        row("w" * (MAX_LINE_CHARS - len(row("")))),
        row("w" * (MAX_LINE_CHARS - len(row("")) + 1)),
        json.dumps({"text": "\U0001d11e" * (MAX_LINE_CHARS + 2), "label": "a"}, ensure_ascii=False).encode(),
    ]
)
random_lines = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
files = st.tuples(
    st.booleans(), st.lists(st.one_of(valid_lines, valid_lines, hostile_lines, hostile_lines, random_lines), max_size=8)
).map(lambda t: (BOM if t[0] else b"") + b"\n".join(t[1]) + (b"\n" if t[1] and len(t[1]) % 2 else b""))

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Cases a random draw reaches rarely, always run: a BOM past line 1, a line at the limit only with its \r.
MID_BOM = row("x") + b"\n" + BOM + row("y") + b"\n"
CR_AT_LIMIT = BOM + row("w" * (MAX_LINE_CHARS - len(row("")))) + b"\r\n" + row("v") + b"\r\n"


def check_loader(tmp_path: Path, data: bytes, load: Callable[[Path], list[Any]]) -> None:
    path = write(tmp_path, data, "prop.jsonl")
    want, bad_line = expected_outcome(data, judge_labeled if load is labeled else judge_unlabeled)
    try:
        got = load(path)
    except InputError as exc:
        message = str(exc)
        named = re.search(r" line (\d+) ", message)
        assert str(path) in message and "\n" not in message
        assert bad_line is not None and named is not None and int(named.group(1)) == bad_line, message
        return
    assert bad_line is None, f"line {bad_line} should have failed"
    if load is labeled:
        assert got == want
    else:
        distinct: dict[str, str] = {}
        for item in want:
            if item["text"].strip():
                distinct.setdefault(content_hash(item["text"]), item["text"])
        assert got == list(distinct.values())


def labeled(path: Path) -> list[Any]:
    return read_jsonl(path, LABELS, FIELD, [])


def unlabeled(path: Path) -> list[Any]:
    return read_texts(path, "task.unlabeled", [])


@PROPERTY
@given(data=files)
@example(data=MID_BOM)
@example(data=CR_AT_LIMIT)
def test_property_labeled_rows_parse_exactly_or_fail_at_the_first_bad_line(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    check_loader(tmp_path_factory.mktemp("p"), data, labeled)


@PROPERTY
@given(data=files)
@example(data=MID_BOM)
@example(data=CR_AT_LIMIT)
def test_property_unlabeled_texts_parse_exactly_or_fail_at_the_first_bad_line(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    check_loader(tmp_path_factory.mktemp("p"), data, unlabeled)


def test_the_property_oracle_agrees_with_hand_built_cases() -> None:
    good = row("a text") + b"\n"
    assert expected_outcome(BOM + good + b"\n" + good, judge_labeled) == ([{"text": "a text", "label": "a"}] * 2, None)
    assert expected_outcome(good + b"[1]\n" + good, judge_labeled)[1] == 2
    assert expected_outcome(good + b'{"text": "\\ud800"}\n', judge_unlabeled)[1] == 2


def test_cli_run_with_a_bad_data_file_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    files = {**GOOD_FILES, "seed.jsonl": row("fine") + b"\n" + b'{"text": "na\xefve", "label": "a"}\n'}
    spec = classification_spec(tmp_path, files, **GOOD_TASK)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "run", str(spec), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "DISTILL_QUIET": "1"},
        timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert f"task.seed_examples: {tmp_path}/seed.jsonl line 2 is not valid UTF-8" in errors[0]
    assert "save the file as UTF-8" in errors[0] and not run_dir.exists()


def test_a_run_reads_csv_tsv_and_datasets_files_as_it_reads_jsonl(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same tiny task with its seed as CSV, validation as TSV and test as a `datasets` folder."""
    import csv as csv_module

    from datasets import Dataset

    from agent.store import RunStore
    from tests.run_helpers import FIXTURES, run_spec, served_simulator, write_spec

    monkeypatch.setenv("DISTILL_TEST_KEY", "k")
    monkeypatch.setenv("DISTILL_QUIET", "1")
    spec_path = write_spec(tmp_path, tiny_model, served_simulator(make_simulator()), max_rounds=0)
    rows = {name: read_jsonl(FIXTURES / f"{name}.jsonl", None, name) for name in ("seed", "validation", "test")}
    for name, delimiter in (("seed.csv", ","), ("validation.tsv", "\t")):
        with (tmp_path / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv_module.DictWriter(handle, ["label", "text"], delimiter=delimiter)
            writer.writeheader()
            writer.writerows(rows[name.split(".")[0]])
    Dataset.from_list(rows["test"]).save_to_disk(str(tmp_path / "test_set"))
    data = yaml.safe_load(spec_path.read_text())
    data["task"].update(seed_examples="seed.csv", validation="validation.tsv", test="test_set")
    spec_path.write_text(yaml.safe_dump(data))

    run_dir, _ = run_spec(spec_path, tmp_path / "run")
    store = RunStore(run_dir / "run.sqlite")
    stored = {split: store.examples(split) for split in ("train", "feedback", "heldback", "test")}
    store.close()
    assert sorted(e.text for e in stored["train"] if e.origin == "real") == sorted(r["text"] for r in rows["seed"])
    validation = sorted((e.text, e.label) for e in stored["feedback"] + stored["heldback"])
    assert validation == sorted((r["text"], r["label"]) for r in rows["validation"])
    assert [(e.text, e.label) for e in stored["test"]] == [(r["text"], r["label"]) for r in rows["test"]]


def test_a_run_maps_the_columns_of_every_file(
    tmp_path: Path, tiny_model: str, make_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task.columns reaches every reader of the run: seed, validation, test and the unlabeled pool."""
    import csv as csv_module

    from datasets import Dataset

    from agent.store import RunStore
    from tests.run_helpers import FIXTURES, run_spec, served_simulator, write_spec

    monkeypatch.setenv("DISTILL_TEST_KEY", "k")
    monkeypatch.setenv("DISTILL_QUIET", "1")
    spec_path = write_spec(
        tmp_path, tiny_model, served_simulator(make_simulator()), max_rounds=1, examples_per_round=0, active_per_round=3
    )
    rows = {name: read_jsonl(FIXTURES / f"{name}.jsonl", None, name) for name in ("seed", "validation", "test", "pool")}
    mapped = {n: [{"utterance": r["text"], "intent": r["label"]} for r in rs] for n, rs in rows.items()}
    for name, delimiter in (("seed.csv", ","), ("validation.tsv", "\t")):
        with (tmp_path / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv_module.DictWriter(handle, ["intent", "utterance"], delimiter=delimiter)
            writer.writeheader()
            writer.writerows(mapped[name.split(".")[0]])
    Dataset.from_list(mapped["test"]).save_to_disk(str(tmp_path / "test_set"))
    with (tmp_path / "unlabeled.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv_module.DictWriter(handle, ["utterance"])
        writer.writeheader()
        writer.writerows({"utterance": r["utterance"]} for r in mapped["pool"][:40])
    data = yaml.safe_load(spec_path.read_text())
    data["task"].update(
        seed_examples="seed.csv",
        validation="validation.tsv",
        test="test_set",
        unlabeled="unlabeled.csv",
        columns={"text": "utterance", "label": "intent"},
    )
    spec_path.write_text(yaml.safe_dump(data))

    run_dir, _ = run_spec(spec_path, tmp_path / "run")
    store = RunStore(run_dir / "run.sqlite")
    stored = {split: store.examples(split) for split in ("train", "feedback", "heldback", "test")}
    store.close()
    assert sorted(e.text for e in stored["train"] if e.origin == "real") == sorted(r["text"] for r in rows["seed"])
    assert len(stored["feedback"] + stored["heldback"]) == len(rows["validation"])
    assert [(e.text, e.label) for e in stored["test"]] == [(r["text"], r["label"]) for r in rows["test"]]
    pool_texts = {r["text"] for r in rows["pool"][:40]}
    active = [e for e in stored["train"] if e.origin == "active"]
    assert len(active) == 3 and all(e.text in pool_texts for e in active)
