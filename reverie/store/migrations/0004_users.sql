-- 0004: users of `reverie serve`, who owns what, and what forgetting needs to find.
-- user_id NULL is the owner (who runs `reverie read`, `reverie sleep`): the owner's documents
-- other than conversations are the shared reading everyone recalls and every night learns.

CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    token_sha256 TEXT UNIQUE,                  -- sha256 of the bearer token; NULL once revoked
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

ALTER TABLE documents ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE conversations ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE nights ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;
CREATE INDEX documents_user ON documents(user_id);
CREATE INDEX conversations_user ON conversations(user_id);
CREATE INDEX nights_user ON nights(user_id);

-- Every chunk id there ever was, with its document: a re-read replaces a document's chunks (and
-- a served conversation is rewritten at every turn), but dreams and baselines keep the old ids,
-- so who owns a dream and what forgetting a document must delete are found through this table.
CREATE TABLE chunk_documents (
    chunk_id    INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL                  -- no foreign key: it outlives the chunk
);
CREATE INDEX chunk_documents_document ON chunk_documents(document_id);
INSERT INTO chunk_documents(chunk_id, document_id) SELECT id, document_id FROM chunks;
CREATE TRIGGER chunks_document AFTER INSERT ON chunks BEGIN
    INSERT OR REPLACE INTO chunk_documents(chunk_id, document_id) VALUES (new.id, new.document_id);
END;

-- Adapters get an owner and a fourth verdict, 'forgotten' (trained on something since forgotten:
-- its files are deleted). A CHECK cannot be altered, so the table is rebuilt; dropping it sets
-- conversations.adapter_id to NULL (ON DELETE SET NULL), so those links are put back after.
CREATE TABLE adapters_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    path        TEXT NOT NULL,
    base_model  TEXT NOT NULL,
    night_id    INTEGER REFERENCES nights(id) ON DELETE SET NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('candidate', 'kept', 'rejected', 'forgotten')),
    metrics     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE
);
INSERT INTO adapters_new(id, name, path, base_model, night_id, verdict, metrics, created_at)
    SELECT id, name, path, base_model, night_id, verdict, metrics, created_at FROM adapters;
CREATE TABLE conversation_adapters AS SELECT id, adapter_id FROM conversations WHERE adapter_id IS NOT NULL;
DROP TABLE adapters;
ALTER TABLE adapters_new RENAME TO adapters;
UPDATE conversations SET adapter_id = (SELECT c.adapter_id FROM conversation_adapters c WHERE c.id = conversations.id)
    WHERE id IN (SELECT id FROM conversation_adapters);
DROP TABLE conversation_adapters;
CREATE INDEX adapters_user ON adapters(user_id);
