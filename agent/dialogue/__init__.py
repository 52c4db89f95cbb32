"""The dialogue run: strategy teaching for a black-box student LLM (DESIGN §7)."""
