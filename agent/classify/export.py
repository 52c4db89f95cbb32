"""Exporting the best round's model with its card."""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.classify.card import model_card
from agent.classify.context import RunContext


def export_best(ctx: RunContext, best: int) -> Path:
    """Copy the best round's model to <run>/model with a full model card."""
    from trainers.encoder import EncoderClassifier

    student = EncoderClassifier.load(ctx.model_dir(best))
    out = ctx.run_dir / "model"
    if out.exists():
        shutil.rmtree(out)
    student.save(out, card=model_card(ctx, best))
    return out
