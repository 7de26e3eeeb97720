-- 0002: resumable dream runs. A run is planned once (its seed and settings), generated in
-- small batches each committed with its dreams, then gated, deduplicated and selected.

CREATE TABLE dream_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'abandoned')),
    seed        INTEGER NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}',    -- JSON: budget, generators, chunk ids, dream settings
    metrics     TEXT NOT NULL DEFAULT '{}',    -- JSON: meter of the dream set and of the baseline
    started_at  TEXT NOT NULL,
    finished_at TEXT
);

-- One row per finished batch of work items, written in the same transaction as its dreams:
-- a restarted run skips exactly these.
CREATE TABLE dream_run_batches (
    run_id      INTEGER NOT NULL REFERENCES dream_runs(id) ON DELETE CASCADE,
    phase       TEXT NOT NULL CHECK (phase IN ('dream', 'baseline')),
    batch       INTEGER NOT NULL,
    n_tokens    INTEGER NOT NULL,              -- generated tokens in this batch
    kept_tokens INTEGER NOT NULL,              -- tokens of the dreams that passed the gate
    seconds     REAL NOT NULL,
    PRIMARY KEY (run_id, phase, batch)
);

-- Naive-baseline texts: the comparison for a run's meter, never trained on.
CREATE TABLE dream_baselines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES dream_runs(id) ON DELETE CASCADE,
    chunk_id    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    n_tokens    INTEGER NOT NULL,
    seed        INTEGER NOT NULL
);

ALTER TABLE dreams ADD COLUMN run_id INTEGER REFERENCES dream_runs(id) ON DELETE SET NULL;
CREATE INDEX dreams_run ON dreams(run_id);
