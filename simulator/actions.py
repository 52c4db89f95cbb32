"""Brief actions ``generate`` and ``label``, registered in ``simulator.registry``.

``generate`` serves unused pool items of a label (near the brief's ``like`` texts, with diversity) plus
the injected faults the knobs ask for; ``label`` answers the pool's gold label (nearest item for new text).

Out of scope: a task's labels may be a subset of the pool's (20 of Banking77's 77 intents). A brief
whose label list holds ``out_of_scope`` is answered as a task with a "none of these" outcome: ``label``
answers ``out_of_scope`` for a text whose pool label is not one of the brief's labels, and ``generate``
of ``out_of_scope`` (its brief lists the in-scope labels) serves pool items of the *other* labels —
near-domain by construction, being messages of the same users about something else. A pool may also
hold its own ``out_of_scope`` items (CLINC150's); they count as outside every scope.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from generators.generation import OUT_OF_SCOPE
from simulator.pool import PoolIndex, normalise
from simulator.registry import ActionContext, ActionError, Brief, register_action
from simulator.sampling import DrawSpec, draw

MAX_N = 1000  # a sanity bound on one brief's n; a real provider would run out of output tokens first
REFUSALS = (
    "I'm sorry, but I can't help with generating that content.",
    "I'm sorry, I cannot create examples for this request.",
    "As an AI language model, I can't produce that kind of text.",
)


# ---------------------------------------------------------------------------------------------- generate


@register_action("generate")
def generate(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """Up to ``n`` unused pool items of ``label`` (near ``like``, with diversity), plus injected faults."""
    label = _known_label(brief.get("label"), ctx.index, "label")
    n = _count(brief.get("n"))
    rows, noise_rows = _sources(label, brief, ctx.index)
    like, avoid = _texts(brief, "like"), _texts(brief, "avoid")
    spec = DrawSpec(
        like=ctx.index.vectorize(like) if like else None,
        length=_length(brief),
        exclude=frozenset(normalise(t) for t in like + avoid),
        width=ctx.config.diversity_width,
    )
    with ctx.usage.lock:  # held for in-memory work only; the server never awaits while holding it
        plan = [_slot_kind(ctx, label, bool(like)) for _ in range(n)]
        own = draw(ctx.index, ctx.usage, rows, plan.count("pool"), spec, ctx.rng)
        ctx.usage.mark_used(own)  # before the noise draw, in case the confusable class is the label itself
        noisy = draw(ctx.index, ctx.usage, noise_rows, plan.count("noise"), spec, ctx.rng)
        texts = _fill(plan, own, noisy, like, label, ctx)
        ctx.usage.record_served(label, own + noisy)
        ctx.counters["served"] += len(own) + len(noisy)
    return {"examples": [{"text": text, "label": label} for text in texts]}


def _sources(label: str, brief: Brief, index: PoolIndex) -> tuple[np.ndarray, np.ndarray]:
    """Pool rows the label's examples come from, and the rows its label-noise examples come from.

    A label: its own rows; noise from its most confusable class. ``out_of_scope``: the rows of every
    pool label outside the brief's (in-scope) labels; noise from the in-scope labels (a text that
    does fit a label, sent as out of scope). No rows left outside the scope: no examples, like a
    label whose pool ran out.
    """
    if label != OUT_OF_SCOPE:
        return index.rows[label], index.rows[index.confusable[label]]
    in_scope = _allowed_labels(brief, index) - {OUT_OF_SCOPE}
    outside = [index.rows[name] for name in index.labels if name not in in_scope]
    inside = [index.rows[name] for name in index.labels if name in in_scope]
    empty = np.zeros(0, dtype=np.int64)
    return np.concatenate(outside) if outside else empty, np.concatenate(inside) if inside else empty


def _slot_kind(ctx: ActionContext, label: str, has_like: bool) -> str:
    """What one example slot becomes: a refusal, a copy of a like text, a duplicate, noise, or a pool item."""
    config, rng = ctx.config, ctx.rng
    if rng.random() < config.refusal_rate:
        return "refusal"
    if has_like and rng.random() < config.copy_rate:
        return "copy"
    if ctx.usage.served.get(label) and rng.random() < config.dup_rate:
        return "dup"
    if rng.random() < config.label_noise:
        return "noise"
    return "pool"


def _fill(
    plan: list[str], own: list[int], noisy: list[int], like: list[str], label: str, ctx: ActionContext
) -> list[str]:
    """Texts in slot order; slots whose class ran out of unused items are dropped (fewer examples)."""
    items, rng = ctx.index.items, ctx.rng
    sources = {"pool": iter(own), "noise": iter(noisy)}
    texts = []
    for kind in plan:
        if kind in sources:
            row = next(sources[kind], None)
            if row is None:
                continue
            texts.append(items[row].text)
        elif kind == "copy":
            texts.append(str(rng.choice(like)))
        elif kind == "dup":
            texts.append(items[int(rng.choice(ctx.usage.served[label]))].text)
        else:
            texts.append(str(rng.choice(REFUSALS)))
        if kind != "pool":
            ctx.counters[kind] += 1
    return texts


# ---------------------------------------------------------------------------------------------- label


@register_action("label")
def label(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """The gold label of each text (exact match), else the label of its nearest pool item."""
    if "texts" not in brief:
        raise ActionError("brief.texts is required: the list of texts to label")
    texts = _texts(brief, "texts")
    scope = _allowed_labels(brief, ctx.index)
    out_of_scope = OUT_OF_SCOPE in scope or OUT_OF_SCOPE in (brief.get("labels") or [])
    scope.discard(OUT_OF_SCOPE)  # a pool's own out_of_scope items are outside every scope
    # With a "none of these" outcome every pool item may match: its label decides in or out of scope.
    rows = _match_rows(texts, set(ctx.index.labels) if out_of_scope else scope, ctx)
    answers = []
    with ctx.usage.lock:
        for i, (text, row) in enumerate(zip(texts, rows, strict=True)):
            if ctx.index.keys[row] == normalise(text):
                ctx.usage.mark_used([row])  # a labelled pool text must not come back from generate
            answers.append({"index": i, "label": _answer(ctx.index.items[row].label, scope, out_of_scope, ctx)})
    return {"labels": answers}


def _match_rows(texts: list[str], allowed: set[str], ctx: ActionContext) -> list[int]:
    """Exact (normalised) matches where their label is allowed; one batched nearest search for the rest."""
    index = ctx.index
    rows: list[int | None] = []
    for text in texts:
        row = index.exact.get(normalise(text))
        rows.append(row if row is not None and index.items[row].label in allowed else None)
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        for i, row in zip(missing, index.nearest([texts[i] for i in missing], allowed), strict=True):
            rows[i] = row
    return [int(row) for row in rows if row is not None]


def _answer(gold: str, scope: set[str], out_of_scope: bool, ctx: ActionContext) -> str:
    """The pool's label if in scope (else ``out_of_scope``); with label noise, its confusable class instead."""
    answer = gold if gold in scope or not out_of_scope else OUT_OF_SCOPE
    confusable = ctx.index.confusable[gold]
    if confusable != answer and confusable in scope and ctx.rng.random() < ctx.config.label_noise:
        ctx.counters["noise"] += 1
        return confusable
    return answer


# ---------------------------------------------------------------------------------------------- brief fields


def _known_label(value: Any, index: PoolIndex, name: str) -> str:
    if not isinstance(value, str):
        raise ActionError(f"brief.{name} must be a string label, got {value!r}")
    if value not in index.rows and value != OUT_OF_SCOPE:
        shown = ", ".join(index.labels[:20]) + (", …" if len(index.labels) > 20 else "")
        raise ActionError(f"unknown label {value!r}; the simulator's pool has labels: {shown}", code="unknown_label")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_N:
        raise ActionError(f"brief.n must be an integer in [0, {MAX_N}], got {value!r}")
    return value


def _texts(brief: Brief, name: str) -> list[str]:
    value = brief.get(name, [])
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ActionError(f"brief.{name} must be a list of strings")
    return value


def _length(brief: Brief) -> str | None:
    attributes = brief.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ActionError("brief.attributes must be a JSON object")
    length = attributes.get("length")
    return length if isinstance(length, str) else None


def _allowed_labels(brief: Brief, index: PoolIndex) -> set[str]:
    """The brief's label list restricted to the pool's labels (all pool labels if the brief has none)."""
    listed = brief.get("labels")
    if listed is None:
        return set(index.labels)
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise ActionError("brief.labels must be a list of label strings")
    allowed = set(listed) & set(index.labels)
    if not allowed:
        raise ActionError("none of brief.labels is a label of the simulator's pool", code="unknown_label")
    return allowed
