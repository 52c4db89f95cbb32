"""The orchestrator: task spec, run store, round loop, decision policy, budget, CLI, reports."""
