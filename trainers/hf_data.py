"""`datasets` folders (``save_to_disk``) in and out: the user's data as rows, the run's data as a DatasetDict.

Here because ``datasets`` belongs to the training stack (imported only inside ``trainers/``, so the CLI
starts without it). The agent checks and labels the rows; this module only converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Files ``save_to_disk`` writes: a Dataset folder holds the first two, a DatasetDict folder the third.
_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


class NotADatasetFolder(ValueError):
    """The folder is not one ``save_to_disk`` wrote, or ``datasets`` could not read it."""


@dataclass(frozen=True)
class SavedTable:
    """What a ``save_to_disk`` folder holds: its split names (a DatasetDict) or its columns and rows (a Dataset).

    ``ClassLabel`` columns arrive as their label names, not integers.
    """

    splits: list[str]
    columns: list[str]
    rows: list[dict[str, Any]]


def looks_saved(path: Path) -> bool:
    """Whether ``path`` is a folder with the files ``save_to_disk`` writes (no ``datasets`` import)."""
    return path.is_dir() and any((path / name).is_file() for name in _MARKERS)


def read_saved(path: Path) -> SavedTable:
    """Load a ``save_to_disk`` folder; a DatasetDict gives its split names only."""
    from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError or its own errors
        raise NotADatasetFolder(" ".join(str(exc).split())[:300]) from None
    if isinstance(data, DatasetDict):
        return SavedTable(sorted(data), [], [])
    assert isinstance(data, Dataset)
    names = {col: feature.names for col, feature in data.features.items() if isinstance(feature, ClassLabel)}
    rows = [
        {
            col: (names[col][value] if col in names and isinstance(value, int) and value >= 0 else value)
            for col, value in row.items()
        }
        for row in data.to_list()
    ]
    return SavedTable([], list(data.column_names), rows)


def save_splits(splits: dict[str, list[dict[str, Any]]], out: Path) -> None:
    """Write ``{split: rows}`` as a DatasetDict folder (``load_from_disk(out)`` reads it back).

    Every split gets the columns of the first non-empty one, so an empty split still has the schema.
    """
    from datasets import Dataset, DatasetDict

    columns = next((list(rows[0]) for rows in splits.values() if rows), ["text", "label"])
    data = DatasetDict(
        {
            name: Dataset.from_dict({col: [row.get(col) for row in rows] for col in columns})
            if rows
            else Dataset.from_dict({col: [] for col in columns})
            for name, rows in splits.items()
        }
    )
    data.save_to_disk(str(out))
