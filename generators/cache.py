"""Content-addressed response cache (SQLite): a rerun of an identical request is free.

The key is the sha256 of the canonical request (model, messages, sampling parameters, response
format) plus a sample index, so N samples of one prompt at temperature > 0 stay distinct. Credentials
and the base URL are not part of the key: the same request to a re-keyed endpoint still hits.

Every write is committed with ``synchronous=FULL`` (the WAL is fsynced at each commit), so a response
is on disk before the caller that paid for it sees it. From async code, ``aput`` does the same without
stalling the event loop: concurrent writes are committed together in one transaction (one fsync) on a
writer thread, and each caller resumes only once the transaction holding its row is committed. Reads
use their own connection, which WAL lets proceed while a commit is being fsynced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_Row = tuple[str, str, str, int, int, float]


def request_key(payload: dict[str, Any], sample_index: int) -> str:
    """sha256 of the canonical JSON of ``payload`` plus the sample index."""
    canonical = json.dumps(
        {"request": payload, "sample_index": sample_index}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
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
        self._lock = threading.Lock()  # the write connection
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # stated, not assumed: a commit is on disk when it returns
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, content TEXT NOT NULL,"
            " finish_reason TEXT NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"
            " created_at REAL NOT NULL)"
        )
        # Batch API jobs submitted and not yet collected: paid-for work in flight. A resume after a crash
        # re-attaches to the job whose requests it would send again, instead of paying for a new one.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, keys_json TEXT NOT NULL,"
            " created_at REAL NOT NULL, collected INTEGER NOT NULL DEFAULT 0)"
        )
        # Reads on their own connection: in WAL mode they never wait for a commit's fsync.
        self._read_lock = threading.Lock()
        self._read_db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # aput's group commit: rows waiting for the next transaction, and whether a flush is under way.
        self._pending: list[tuple[_Row, asyncio.Future[None]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._writer: ThreadPoolExecutor | None = None

    def get(self, key: str) -> CachedResponse | None:
        with self._read_lock:
            row = self._read_db.execute(
                "SELECT content, finish_reason, tokens_in, tokens_out FROM responses WHERE key=?", (key,)
            ).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, response: CachedResponse) -> None:
        self._write_rows([_row(key, response)])

    async def aput(self, key: str, response: CachedResponse) -> None:
        """``put`` for async callers: returns once the row is committed (fsynced), without blocking the loop.

        Rows put concurrently share one transaction. The flush runs as its own task, so a caller that is
        cancelled while waiting does not strand the others; its row is written all the same.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((_row(key, response), done))
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush())  # held: the loop keeps only weak references
        await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[_Row, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="distill-cache")
                try:
                    await asyncio.shield(loop.run_in_executor(self._writer, self._write_rows, [r for r, _ in batch]))
                except Exception as exc:
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
                batch = []
        finally:
            if batch or self._pending:  # cancelled mid-flush (the loop is closing): write the rest before it goes
                left, self._pending = batch + self._pending, []
                try:
                    self._write_rows([r for r, _ in left])
                except Exception as exc:
                    _settle(left, exc)
                else:
                    _settle(left, None)
            self._flushing = False

    def _write_rows(self, rows: list[_Row]) -> None:
        """One transaction for ``rows``: a single commit, a single fsync."""
        with self._lock:
            if len(rows) == 1:
                self._db.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", rows[0])
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record_batch(self, batch_id: str, keys: list[str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO batches VALUES (?,?,?,0)", (batch_id, json.dumps(sorted(keys)), time.time())
            )

    def pending_batch(self, keys: list[str]) -> tuple[str, list[str]] | None:
        """The newest uncollected batch holding only requests among ``keys``: (batch id, its keys)."""
        wanted = set(keys)
        with self._lock:
            rows = self._db.execute(
                "SELECT batch_id, keys_json FROM batches WHERE collected=0 ORDER BY created_at DESC"
            ).fetchall()
        for batch_id, keys_json in rows:
            held = json.loads(keys_json)
            if held and set(held) <= wanted:
                return batch_id, held
        return None

    def mark_collected(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET collected=1 WHERE batch_id=?", (batch_id,))

    def __len__(self) -> int:
        with self._read_lock:
            return int(self._read_db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        self._read_db.close()
        self._db.close()


def _row(key: str, response: CachedResponse) -> _Row:
    return (key, response.content, response.finish_reason, response.tokens_in, response.tokens_out, time.time())


def _settle(batch: list[tuple[_Row, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, done in batch:
        if done.done():  # its caller was cancelled; the row was written (or failed) all the same
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
