"""The simulator's labeled pool: loading with validation, and a TF-IDF index built once at start.

Everything a request needs (the vectors, per-label row lists, confusable classes, median lengths,
the exact-text map) is precomputed here, so per-request work is a small sparse product.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


@dataclass(frozen=True)
class PoolItem:
    """One human-written example of the pool."""

    text: str
    label: str


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive key for exact-text matching."""
    return " ".join(text.split()).casefold()


def load_pool(path: Path) -> list[PoolItem]:
    """Read a JSONL pool of ``{"text", "label"}`` objects; blank lines are skipped.

    Raises ``ValueError`` naming the file and the 1-based line of the first bad line, and
    ``FileNotFoundError`` if the file does not exist.
    """
    items = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                items.append(_parse_line(line, path, number))
    if not items:
        raise ValueError(f'{path}: the pool is empty; it needs JSONL lines like {{"text": ..., "label": ...}}')
    return items


def _parse_line(line: str, path: Path, number: int) -> PoolItem:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{number}: expected a JSON object with 'text' and 'label'")
    for key in ("text", "label"):
        value = record.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}:{number}: '{key}' must be a non-empty string, got {value!r}")
    return PoolItem(text=record["text"], label=record["label"])


# Pruning very common and one-off n-grams halves nearest-neighbour time on a large pool for a 1-point
# loss of 1-NN accuracy (Banking77: 0.80 vs 0.81); a small pool is cheap anyway and could lose its
# whole vocabulary to pruning, so it keeps every n-gram.
_PRUNE_FROM = 1000


def _vectorizers(size: int) -> list[TfidfVectorizer]:
    """Word n-grams catch topic; char n-grams catch spelling variants of short texts."""
    prune = size >= _PRUNE_FROM
    common: dict[str, Any] = {"sublinear_tf": True, "dtype": np.float32, "max_df": 0.3 if prune else 1.0}
    return [
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), **common),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2 if prune else 1, **common),
    ]


class TfidfFeatures:
    """Word + char TF-IDF, fitted with scikit-learn, with a lean transform for the few texts of a request.

    scikit-learn's ``transform`` spends ~0.5 ms per call on input validation alone; a request needs a
    handful of vectors, so we apply the fitted vocabulary and idf ourselves (same numbers: sublinear tf
    × idf, L2 per part, then L2 over the concatenation).
    """

    def __init__(self, texts: list[str]) -> None:
        self._parts: list[tuple[Callable[[str], list[str]], dict[str, int], np.ndarray, int]] = []
        blocks, offset = [], 0
        for vectorizer in _vectorizers(len(texts)):
            blocks.append(vectorizer.fit_transform(texts))
            idf = vectorizer.idf_.astype(np.float32)
            self._parts.append((vectorizer.build_analyzer(), vectorizer.vocabulary_, idf, offset))
            offset += len(idf)
        self.dim = offset
        self.matrix: sp.csr_matrix = normalize(sp.hstack(blocks, format="csr"))

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """L2-normalised rows for ``texts``, in the fitted feature space."""
        indptr, indices, values = [0], list[int](), list[np.ndarray]()
        for text in texts:
            cols, vals = self._row(text)
            indices.extend(cols)
            values.append(vals)
            indptr.append(len(indices))
        data = np.concatenate(values) if values else np.zeros(0, dtype=np.float32)
        return sp.csr_matrix(
            (data, np.array(indices, dtype=np.int64), np.array(indptr, dtype=np.int64)), shape=(len(texts), self.dim)
        )

    def _row(self, text: str) -> tuple[list[int], np.ndarray]:
        cols: list[int] = []
        parts: list[np.ndarray] = []
        for analyze, vocabulary, idf, offset in self._parts:
            counts = Counter(term for term in analyze(text) if term in vocabulary)
            ids = np.array([vocabulary[term] for term in counts], dtype=np.int64)
            weights = (1 + np.log(np.array(list(counts.values()), dtype=np.float32))) * idf[ids]
            norm = float(np.linalg.norm(weights))
            parts.append(weights / norm if norm else weights)
            cols.extend((ids + offset).tolist())
        vals = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        norm = float(np.linalg.norm(vals))
        return cols, vals / norm if norm else vals


class PoolIndex:
    """Immutable lookups over the pool: vectors, rows per label, confusable classes, exact matches."""

    def __init__(self, items: list[PoolItem]) -> None:
        self.items = items
        self.labels: list[str] = list(dict.fromkeys(item.label for item in items))  # first-seen order
        self.rows: dict[str, np.ndarray] = {
            label: np.array([i for i, item in enumerate(items) if item.label == label], dtype=np.int64)
            for label in self.labels
        }
        self.lengths = np.array([len(item.text) for item in items], dtype=np.int64)
        self.keys = [normalise(item.text) for item in items]
        self.exact: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            self.exact.setdefault(key, i)  # first occurrence wins on conflicting duplicates
        self._features = TfidfFeatures([item.text for item in items])
        self.matrix = self._features.matrix
        # Nearest-neighbour search multiplies (queries × features) by this (features × items) matrix:
        # its cost follows the posting lists of the queries' features, not the whole pool.
        self._matrix_t = self.matrix.T.tocsr()
        code = {label: k for k, label in enumerate(self.labels)}
        self._label_codes = np.array([code[item.label] for item in items], dtype=np.int64)
        self.confusable = self._confusable_classes()

    def __len__(self) -> int:
        return len(self.items)

    def vectorize(self, texts: list[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows for ``texts``, in the pool's feature space."""
        return self._features.transform(texts)

    def nearest(self, texts: list[str], allowed: set[str]) -> list[int]:
        """Index of the most similar pool item whose label is in ``allowed``, for each text."""
        sims = (self.vectorize(texts) @ self._matrix_t).toarray()  # (len(texts), len(pool))
        if not allowed.issuperset(self.labels):
            allowed_codes = [k for k, label in enumerate(self.labels) if label in allowed]
            sims[:, ~np.isin(self._label_codes, allowed_codes)] = -np.inf
        return [int(row) for row in sims.argmax(axis=1)]

    def _confusable_classes(self) -> dict[str, str]:
        """Each label → the other label whose TF-IDF centroid is most similar (itself if it is alone)."""
        # Sparse label-indicator product: a dense (labels × vocabulary) centroid matrix would be large.
        cols = self._label_codes
        indicator = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (cols, np.arange(len(cols)))),
            shape=(len(self.labels), len(self.items)),
        )
        centroids = normalize(indicator @ self.matrix)
        sims = (centroids @ centroids.T).toarray()
        np.fill_diagonal(sims, -np.inf)
        if len(self.labels) == 1:
            return {self.labels[0]: self.labels[0]}
        return {label: self.labels[int(sims[i].argmax())] for i, label in enumerate(self.labels)}
