"""Strategy-teaching actions (DESIGN §7): the simulator as scenario writer, answerer, judge and strategist.

Briefs and replies (the prompt templates under ``prompts/`` describe the same shapes to a real LLM):

- ``scenario``  ``{"flows": [ids] (empty = all), "n": N, "target_criteria": [ids]}``
  → ``{"scenarios": [{"flow", "message"}]}``: real customer messages from the pool whose intent (label)
  the policy maps to one of the flows; flows that contain a target criterion are served first. A pool
  item is never returned twice (the pool's usage is shared with ``generate``).
- ``respond``   ``{"flow", "message"}`` → ``{"reply"}``: the reference answer, built from the reference
  phrase of every criterion of the flow, so it passes the judge.
- ``judge``     ``{"flow", "message", "reply"}`` → ``{"criteria": [{"id", "score", "violation"}], "score",
  "rationale"}``: exactly ``Policy.judge``, deterministic (no randomness, whatever the seed).
- ``strategize`` ``{"flow", "message", "reply", "failed": [ids]}`` → ``{"strategies": [{"criterion",
  "text"}]}``: the policy's strategy for each failed criterion (when ``failed`` is absent, the judge's).
- ``guidelines`` ``{"pairs": [[a, b], ...], "descriptions": {label: text}}`` → ``{"guidelines": [{"labels",
  "text"}]}``: for each confusable label pair, a rule naming the words that tell them apart in the pool.
  Needs no policy: it works on any classification pool.

The first four need a policy (``SimulatorConfig.policy_path``, ``distill simulate --policy``) and answer
400 without one. Unknown flows, criteria and labels answer 400.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from generators.service_policy import Policy, PolicyError, PolicyLookupError
from simulator.pool import normalise
from simulator.registry import ActionContext, ActionError, Brief, register_action

MAX_SCENARIOS = 1000  # a sanity bound on one brief's n, as for generate
GUIDELINE_TERMS = 3  # distinguishing n-grams quoted per label of a pair
MIN_GAIN = 0.1  # a cue must be in at least 10 points more of the label's messages than of the other's
_WORD = re.compile(r"[^\W\d_]{2,}(?:'[^\W\d_]+)?")  # words, contractions kept whole
# Request filler that customers use for every intent; as a "cue" it would only add noise to a rule.
_FILLER = frozenset(
    {
        "help",
        "need",
        "want",
        "wanna",
        "know",
        "like",
        "tell",
        "assistance",
        "please",
        "trying",
        "try",
        "don't",
        "dont",
        "i'm",
        "im",
        "can't",
        "got",
        "gotta",
    }
)
_STOP = ENGLISH_STOP_WORDS | _FILLER

# ---------------------------------------------------------------------------------------------- the policy


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> Policy:
    """One parse per file version: the mtime is part of the key, so an edited policy is re-read."""
    return Policy.load(path)


def _policy(ctx: ActionContext) -> Policy:
    path = ctx.config.policy_path
    if path is None:
        raise ActionError(
            "the simulator was started without a policy (distill simulate --policy PATH, or "
            "SimulatorConfig.policy_path); scenario, respond, judge and strategize need one",
            code="no_policy",
        )
    try:
        return _load(path, os.stat(path).st_mtime_ns)
    except (OSError, PolicyError) as exc:  # validated at start, so the file changed under a running server
        raise ActionError(
            f"the simulator's policy file cannot be used any more: {exc}", code="bad_policy", status=500
        ) from exc


def _lookup(call: Any, *args: str) -> Any:
    """Call a policy lookup, turning an unknown flow or criterion into a 400 that lists the known ones."""
    try:
        return call(*args)
    except PolicyLookupError as exc:
        raise ActionError(str(exc), code="unknown_flow_or_criterion") from exc


# ---------------------------------------------------------------------------------------------- scenario


@register_action("scenario")
def scenario(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """Up to ``n`` unused customer messages of the requested flows, target flows first, balanced across flows."""
    policy = _policy(ctx)
    flows = _flow_list(brief, policy)
    n = _count(brief.get("n"))
    targets = _strings(brief, "target_criteria")
    unknown = sorted(set(targets) - policy.criterion_ids())
    if unknown:
        raise ActionError(
            f"unknown criterion id(s) {unknown} in brief.target_criteria; the policy has: "
            f"{', '.join(sorted(policy.criterion_ids()))}",
            code="unknown_flow_or_criterion",
        )
    targeted = set(policy.flows_with(targets)) if targets else set(flows)
    preferred = [f for f in flows if f in targeted]
    others = [f for f in flows if f not in targeted]
    with ctx.usage.lock:  # in-memory work only, as in generate
        picked = _pick(ctx, policy, preferred, n)
        picked += _pick(ctx, policy, others, n - len(picked), skip={normalise(m) for _, _, m in picked})
        ctx.usage.mark_used([row for _, row, _ in picked])
        ctx.counters["served"] += len(picked)
    return {"scenarios": [{"flow": flow, "message": message} for flow, _, message in picked]}


def _flow_list(brief: Brief, policy: Policy) -> list[str]:
    flows = _strings(brief, "flows")
    for flow in flows:
        _lookup(policy.flow, flow)
    return list(dict.fromkeys(flows)) or policy.flow_ids


def _pick(
    ctx: ActionContext, policy: Policy, flows: list[str], k: int, skip: set[str] | None = None
) -> list[tuple[str, int, str]]:
    """(flow, row, text) of up to ``k`` unused pool items, round-robin over the flows so none dominates."""
    if k <= 0 or not flows:
        return []
    queues = [[(flow, row) for row in _unused_rows(ctx, policy, flow)] for flow in flows]
    seen = set(skip or ())
    picked: list[tuple[str, int, str]] = []
    for item in itertools.chain.from_iterable(itertools.zip_longest(*queues)):
        if item is None:
            continue
        flow, row = item
        key = ctx.index.keys[row]
        if key in seen:  # the same text under another row: a scenario is never served twice
            continue
        seen.add(key)
        picked.append((flow, row, ctx.index.items[row].text))
        if len(picked) == k:
            break
    return picked


def _unused_rows(ctx: ActionContext, policy: Policy, flow_id: str) -> list[int]:
    """The flow's unused pool rows (its intents' labels), in a seeded random order."""
    labels = [intent for intent in policy.flow(flow_id).intents if intent in ctx.index.rows]
    if not labels:
        return []
    rows = ctx.usage.unused(np.concatenate([ctx.index.rows[label] for label in labels]))
    return [int(r) for r in ctx.rng.permutation(rows)]


# ---------------------------------------------------------------------------------------------- respond, judge


@register_action("respond")
def respond(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """The teacher's reference answer for the flow (it meets every criterion by construction)."""
    policy = _policy(ctx)
    flow = _flow(brief, policy)
    _string(brief, "message")
    return {"reply": policy.reference_reply(flow)}


@register_action("judge")
def judge(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """``Policy.judge`` of the reply: per-criterion 0/1 with violations, their mean, a rationale."""
    policy = _policy(ctx)
    flow = _flow(brief, policy)
    _string(brief, "message")
    return policy.judge(flow, _string(brief, "reply")).to_dict()


# ---------------------------------------------------------------------------------------------- strategize


@register_action("strategize")
def strategize(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """One short, transferable strategy per failed criterion (the judge's failures when none are given)."""
    policy = _policy(ctx)
    flow = _flow(brief, policy)
    _string(brief, "message")
    reply = _string(brief, "reply")
    failed = _strings(brief, "failed") if "failed" in brief else policy.judge(flow, reply).failed
    strategies = [{"criterion": cid, "text": _lookup(policy.strategy, flow, cid)} for cid in dict.fromkeys(failed)]
    return {"strategies": strategies}


# ---------------------------------------------------------------------------------------------- guidelines


@register_action("guidelines")
def guidelines(brief: Brief, ctx: ActionContext) -> dict[str, Any]:
    """A distinguishing rule per confusable label pair, from the words that separate them in the pool."""
    pairs = _pairs(brief, ctx)
    descriptions = _descriptions(brief)
    rules = []
    for a, b in pairs:
        texts_a, texts_b = _label_texts(ctx, a), _label_texts(ctx, b)
        terms_a, terms_b = _distinguishing_terms(texts_a, texts_b), _distinguishing_terms(texts_b, texts_a)
        text = f"{_clause(a, terms_a, descriptions)}; {_clause(b, terms_b, descriptions)}."
        rules.append({"labels": [a, b], "text": text[0].upper() + text[1:]})
    return {"guidelines": rules}


def _pairs(brief: Brief, ctx: ActionContext) -> list[tuple[str, str]]:
    pairs = brief.get("pairs")
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise ActionError("brief.pairs must be a list of [label, label] pairs")
    for a, b in pairs:
        for label in (a, b):
            if label not in ctx.index.rows:
                raise ActionError(
                    f"unknown label {label!r} in brief.pairs; the simulator's pool has labels: "
                    f"{', '.join(ctx.index.labels[:20])}",
                    code="unknown_label",
                )
        if a == b:
            raise ActionError(f"brief.pairs: a pair needs two different labels, got [{a!r}, {b!r}]")
    return [(a, b) for a, b in pairs]


def _descriptions(brief: Brief) -> dict[str, str]:
    descriptions = brief.get("descriptions") or {}
    if not isinstance(descriptions, dict) or not all(isinstance(v, str) for v in descriptions.values()):
        raise ActionError("brief.descriptions must be a JSON object of label → description")
    return descriptions


def _label_texts(ctx: ActionContext, label: str) -> list[str]:
    return [ctx.index.items[row].text for row in ctx.index.rows[label]]


def _distinguishing_terms(own: list[str], other: list[str], k: int = GUIDELINE_TERMS) -> list[str]:
    """The word n-grams most over-represented in ``own`` vs ``other`` (difference of document frequency).

    Document frequency reads as "how many of its messages say it", which is what a rule for a human
    annotator should quote. Words are compared by a crude stem (so "refund" and "refunds" are one cue,
    not a cue for each label) and quoted in their most common spelling; stop words are dropped, and a
    cue sharing a word with one already chosen is skipped so that the rule names different cues.
    """
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    for text in own:
        for stem, surface in _grams(text):
            surfaces[stem][surface] += 1
    vectorizer = CountVectorizer(binary=True, analyzer=lambda text: [stem for stem, _ in _grams(text)])
    try:
        counts = vectorizer.fit_transform(own + other)
    except ValueError:  # nothing but stop words
        return []
    gain = np.asarray(counts[: len(own)].mean(axis=0)).ravel() - np.asarray(counts[len(own) :].mean(axis=0)).ravel()
    stems = vectorizer.get_feature_names_out()
    chosen: list[str] = []
    for i in np.lexsort((stems, -gain)):  # by gain, ties alphabetical: deterministic
        if gain[i] < MIN_GAIN or len(chosen) == k:
            break
        stem = str(stems[i])
        if not any(set(stem.split()) & set(c.split()) for c in chosen):
            chosen.append(stem)
    return [surfaces[stem].most_common(1)[0][0] for stem in chosen]


def _grams(text: str) -> list[tuple[str, str]]:
    """(stem, surface) unigrams and bigrams of the non-stop words of ``text``."""
    words = [w for w in _WORD.findall(text.casefold()) if w not in _STOP]
    stems = [_stem(w) for w in words]
    grams = list(zip(stems, words, strict=True))
    grams += [(f"{a} {b}", f"{x} {y}") for (a, x), (b, y) in itertools.pairwise(grams)]
    return grams


def _stem(word: str) -> str:
    """A crude English stem: enough to merge plurals and -ing/-ed forms of one word."""
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 and not word.endswith(("ss", "us", "is")):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 4 and word[-1] == word[-2] else word  # cancell(ing) → cancel


def _clause(label: str, terms: list[str], descriptions: dict[str, str]) -> str:
    about = f" ({descriptions[label]})" if descriptions.get(label) else ""
    if not terms:
        return f"choose '{label}'{about} otherwise"
    quoted = [f"'{t}'" for t in terms]
    cues = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
    return f"choose '{label}'{about} when the message mentions {cues}"


# ---------------------------------------------------------------------------------------------- brief fields


def _flow(brief: Brief, policy: Policy) -> str:
    flow = _string(brief, "flow")
    _lookup(policy.flow, flow)
    return flow


def _string(brief: Brief, name: str) -> str:
    value = brief.get(name)
    if not isinstance(value, str):
        raise ActionError(f"brief.{name} must be a string, got {value!r}")
    return value


def _strings(brief: Brief, name: str) -> list[str]:
    value = brief.get(name) or []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ActionError(f"brief.{name} must be a list of strings")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SCENARIOS:
        raise ActionError(f"brief.n must be an integer in [0, {MAX_SCENARIOS}], got {value!r}")
    return value
