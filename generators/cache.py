"""Content-addressed response cache (SQLite): a rerun of an identical request is free.

The key is the sha256 of the canonical request (model, messages, sampling parameters, response
format) plus a sample index, so N samples of one prompt at temperature > 0 stay distinct. Credentials
and the base URL are not part of the key: the same request to a re-keyed endpoint still hits.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def request_key(payload: dict[str, Any], sample_index: int) -> str:
    """sha256 of the canonical JSON of ``payload`` plus the sample index."""
    canonical = json.dumps({"request": payload, "sample_index": sample_index}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    content: str
    finish_reason: str
    tokens_in: int
    tokens_out: int


class ResponseCache:
    """A SQLite table of raw responses keyed by request hash. Only valid responses are stored."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, content TEXT NOT NULL,"
            " finish_reason TEXT NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"
            " created_at REAL NOT NULL)"
        )

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT content, finish_reason, tokens_in, tokens_out FROM responses WHERE key=?", (key,)
            ).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, response: CachedResponse) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)",
                (key, response.content, response.finish_reason, response.tokens_in, response.tokens_out,
                 time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
