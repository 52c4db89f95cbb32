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
        # Batch API jobs submitted and not yet collected: paid-for work in flight. A resume after a crash
        # re-attaches to the job whose requests it would send again, instead of paying for a new one.
        self._db.execute("CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, keys_json TEXT NOT NULL,"
                         " created_at REAL NOT NULL, collected INTEGER NOT NULL DEFAULT 0)")

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

    def record_batch(self, batch_id: str, keys: list[str]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO batches VALUES (?,?,?,0)",
                             (batch_id, json.dumps(sorted(keys)), time.time()))

    def pending_batch(self, keys: list[str]) -> tuple[str, list[str]] | None:
        """The newest uncollected batch holding only requests among ``keys``: (batch id, its keys)."""
        wanted = set(keys)
        with self._lock:
            rows = self._db.execute("SELECT batch_id, keys_json FROM batches WHERE collected=0"
                                    " ORDER BY created_at DESC").fetchall()
        for batch_id, keys_json in rows:
            held = json.loads(keys_json)
            if held and set(held) <= wanted:
                return batch_id, held
        return None

    def mark_collected(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET collected=1 WHERE batch_id=?", (batch_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
