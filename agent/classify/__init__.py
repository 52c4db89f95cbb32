"""The classifier run: its context, named steps and round loop (DESIGN §3)."""
