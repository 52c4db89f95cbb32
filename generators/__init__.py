"""Everything that talks to the teacher: client, prompt rendering, generation, filters, simulator.

Never imports torch, transformers or anything under ``trainers``; model-side helpers such as an
embedding function are passed in by the agent as plain callables.
"""
