-- 0001: the whole memory. Later stages (dream, sleep, meter) fill dreams, nights, adapters.

CREATE TABLE documents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL UNIQUE,          -- absolute path it was read from
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL,                 -- txt | md | html | pdf
    sha256      TEXT NOT NULL,                 -- of the file's bytes: unchanged files are skipped
    text        TEXT NOT NULL,                 -- extracted text; chunk offsets point into it
    read_at     TEXT NOT NULL,                 -- first read (UTC, ISO 8601)
    updated_at  TEXT NOT NULL                  -- last time its content changed
);

-- AUTOINCREMENT: chunk ids are never reused, so a dream's provenance never points at a
-- different chunk after its document was re-read.
CREATE TABLE chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord         INTEGER NOT NULL,
    start_char  INTEGER NOT NULL,
    end_char    INTEGER NOT NULL,
    n_tokens    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    UNIQUE (document_id, ord)
);

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;

CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT,
    model       TEXT NOT NULL,
    adapter_id  INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
    started_at  TEXT NOT NULL
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ord             INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT NOT NULL,
    meta            TEXT NOT NULL DEFAULT '{}',   -- JSON: sampling, seed, recalled chunk ids, timing
    created_at      TEXT NOT NULL,
    UNIQUE (conversation_id, ord)
);

CREATE TABLE nights (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'kept', 'rejected', 'failed', 'interrupted')),
    seed        INTEGER NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}',    -- JSON: the settings the night ran with
    timings     TEXT NOT NULL DEFAULT '{}',    -- JSON: seconds per phase
    metrics     TEXT NOT NULL DEFAULT '{}',    -- JSON: quiz, perplexity, diversity, before and after
    started_at  TEXT NOT NULL,
    finished_at TEXT
);

CREATE TABLE dreams (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    night_id    INTEGER REFERENCES nights(id) ON DELETE SET NULL,
    generator   TEXT NOT NULL,
    text        TEXT NOT NULL,
    prompt      TEXT,                          -- what the model was asked (not trained on)
    model       TEXT NOT NULL,                 -- identity of the model that wrote it
    sampling    TEXT NOT NULL DEFAULT '{}',    -- JSON: temperature, top_p, min_p, ...
    seed        INTEGER NOT NULL,
    metrics     TEXT NOT NULL DEFAULT '{}',    -- JSON
    status      TEXT NOT NULL DEFAULT 'kept' CHECK (status IN ('kept', 'dropped')),
    drop_reason TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX dreams_generator ON dreams(generator);
CREATE INDEX dreams_night ON dreams(night_id);

-- No foreign key to chunks: a dream keeps its provenance when its document is re-read.
CREATE TABLE dream_sources (
    dream_id    INTEGER NOT NULL REFERENCES dreams(id) ON DELETE CASCADE,
    chunk_id    INTEGER NOT NULL,
    PRIMARY KEY (dream_id, chunk_id)
);

CREATE TABLE adapters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    path        TEXT NOT NULL,
    base_model  TEXT NOT NULL,                 -- identity of the base model it was trained on
    night_id    INTEGER REFERENCES nights(id) ON DELETE SET NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('candidate', 'kept', 'rejected')),
    metrics     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

-- Files on disk (exports, reports, merged models) registered in the store.
CREATE TABLE artifacts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    meta        TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

-- Saved results of `reverie meter` and `reverie probe`.
CREATE TABLE meter_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('meter', 'probe')),
    label       TEXT NOT NULL,
    night_id    INTEGER REFERENCES nights(id) ON DELETE SET NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    metrics     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

-- Small named values: the selected adapter, the model's identity, ...
CREATE TABLE state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
