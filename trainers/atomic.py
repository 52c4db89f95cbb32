"""Folders written whole or not at all: a crash never leaves half a model or half an export under its name."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def write_folder(out: Path, write: Callable[[Path], object]) -> None:
    """Build ``out`` in a temporary sibling folder, then move it into place (replacing what is there)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial"  # one fixed name: the next write clears what a kill left
    remove(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        remove(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove(path: Path) -> None:
    """Delete a file, a link or a whole folder; nothing if absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
