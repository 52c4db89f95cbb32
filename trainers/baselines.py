"""The two simple baselines every encoder recipe must beat: TF-IDF + LR and frozen embeddings + LR.

C values were chosen on Banking77 and TREC subsets (5 and 32 per class, full TREC) from
{0.3, 1, 3, 10, 30, 100}: both baselines are as strong as a careful user would make them, so a win
over them means something.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Embed = Callable[[list[str]], np.ndarray]

TFIDF_C = 10.0
EMBEDDING_C = 10.0
MAX_ITER = 2000


def logistic_regression(c: float) -> Any:
    """Multinomial LR with lbfgs; enough iterations that it converges on thousands of rows."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=MAX_ITER)


def tfidf_lr(train_texts: list[str], train_labels: list[str], test_texts: list[str]) -> list[str]:
    """Word 1–2-gram TF-IDF (sublinear tf) + logistic regression; predicted labels for ``test_texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True), logistic_regression(TFIDF_C)
    )
    model.fit(train_texts, train_labels)
    return [str(label) for label in model.predict(test_texts)]


def frozen_embedding_lr(
    train_texts: list[str], train_labels: list[str], test_texts: list[str], embedder: Embed
) -> list[str]:
    """Logistic regression on frozen, L2-normalised sentence vectors (``embedder``: e.g. SentenceEmbedder)."""
    model = logistic_regression(EMBEDDING_C)
    model.fit(embedder(train_texts), train_labels)
    return [str(label) for label in model.predict(embedder(test_texts))]
