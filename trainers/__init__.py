"""Everything that touches weights: students, evaluation, embeddings, export.

torch and transformers are imported only inside this package, so the CLI starts fast.
"""
