"""``python -m agent`` is the ``distill`` command."""

from agent.cli import app

app(prog_name="distill")
