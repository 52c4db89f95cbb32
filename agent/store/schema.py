"""The run store's schema: numbered migrations, applied in order and recorded in ``PRAGMA user_version``.

Append a new script to change the schema; never edit one that has shipped (existing run.sqlite files
have already applied it), and never ALTER a table anywhere else.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: runs and the teacher-call journal (the foundation).
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_json TEXT NOT NULL, versions_json TEXT NOT NULL,
        git_sha TEXT, created_at REAL NOT NULL, status TEXT NOT NULL DEFAULT 'created', stop_reason TEXT
    );
    CREATE TABLE teacher_calls (
        id INTEGER PRIMARY KEY, round INTEGER, prompt_id TEXT NOT NULL, prompt_version INTEGER NOT NULL,
        request_hash TEXT NOT NULL, sample_index INTEGER NOT NULL, model TEXT NOT NULL,
        tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL,
        latency_s REAL NOT NULL, attempts INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
        status TEXT NOT NULL, error TEXT, created_at REAL NOT NULL
    );
    CREATE INDEX teacher_calls_hash ON teacher_calls(request_hash);
    """,
    # 2: the round loop's tables.
    """
    CREATE TABLE rounds (
        idx INTEGER PRIMARY KEY, status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
        decision TEXT, reasons_json TEXT, quotas_json TEXT, model_dir TEXT
    );
    CREATE TABLE examples (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, split TEXT NOT NULL, text TEXT NOT NULL,
        label TEXT NOT NULL, origin TEXT NOT NULL, teacher_call_id INTEGER, prompt_id TEXT,
        strategy_id TEXT, content_hash TEXT NOT NULL, kept INTEGER
    );
    CREATE INDEX examples_split ON examples(split, kept);
    CREATE TABLE filter_decisions (
        id INTEGER PRIMARY KEY, example_id INTEGER NOT NULL REFERENCES examples(id), filter TEXT NOT NULL,
        kept INTEGER NOT NULL, reason TEXT NOT NULL, score REAL
    );
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, split TEXT NOT NULL, metric TEXT NOT NULL,
        class TEXT, value REAL NOT NULL
    );
    CREATE INDEX evaluations_round ON evaluations(round, split);
    """,
    # 3: strategy teaching — scenarios, answers, and the versioned, audited strategy library.
    """
    CREATE TABLE scenarios (
        id TEXT PRIMARY KEY, split TEXT NOT NULL, flow TEXT NOT NULL, message TEXT NOT NULL,
        source TEXT NOT NULL, round INTEGER NOT NULL, embedding BLOB, teacher_call_id INTEGER
    );
    CREATE TABLE answers (
        id INTEGER PRIMARY KEY, scenario_id TEXT NOT NULL REFERENCES scenarios(id), round INTEGER NOT NULL,
        role TEXT NOT NULL, condition TEXT NOT NULL, strategy_ids_json TEXT NOT NULL, reply TEXT NOT NULL,
        score REAL, judgement_json TEXT, created_at REAL NOT NULL
    );
    CREATE INDEX answers_scenario ON answers(scenario_id, condition);
    CREATE TABLE strategies (
        id TEXT NOT NULL, version INTEGER NOT NULL, scope TEXT NOT NULL, criterion TEXT, text TEXT NOT NULL,
        status TEXT NOT NULL, round INTEGER, teacher_call_id INTEGER, provenance_json TEXT NOT NULL,
        evidence_json TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (id, version)
    );
    CREATE TABLE strategy_events (
        seq INTEGER PRIMARY KEY, strategy_id TEXT NOT NULL, version INTEGER NOT NULL, action TEXT NOT NULL,
        from_status TEXT, to_status TEXT NOT NULL, text TEXT NOT NULL, note TEXT, at REAL NOT NULL
    );
    """,
    # 4: strategy teaching's finished learning rounds: `distill resume` continues after the last one.
    """
    CREATE TABLE teach_rounds (idx INTEGER PRIMARY KEY, outcome_json TEXT NOT NULL, finished_at REAL NOT NULL);
    """,
    # 5: real providers — how a request was adapted after a 400, and the cost plan made before the run.
    """
    ALTER TABLE teacher_calls ADD COLUMN adaptation TEXT;
    CREATE TABLE plans (id INTEGER PRIMARY KEY CHECK (id = 1), plan_json TEXT NOT NULL, created_at REAL NOT NULL);
    """,
    # 6: trust in labels — the label audit's outcome per flagged example, and each round's split of the
    # teacher budget between generation and active labeling.
    """
    CREATE TABLE label_audits (
        id INTEGER PRIMARY KEY, round INTEGER NOT NULL, example_id INTEGER NOT NULL REFERENCES examples(id),
        given_label TEXT NOT NULL, suggested_label TEXT, second_opinion TEXT, outcome TEXT NOT NULL,
        reason TEXT NOT NULL, score REAL, teacher_call_id INTEGER, created_at REAL NOT NULL
    );
    CREATE INDEX label_audits_round ON label_audits(round);
    ALTER TABLE rounds ADD COLUMN split_json TEXT;
    """,
]
