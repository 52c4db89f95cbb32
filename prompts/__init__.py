"""Versioned prompt templates (YAML), one per teacher action. Loaded by ``generators.prompts``."""

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent
