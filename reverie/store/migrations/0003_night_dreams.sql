-- 0003: which dreams each night trained on, replayed, or held out as quiz questions.
-- A dream is learned once a night that trained on it is kept; a rejected night's dreams stay
-- unlearned for a later night. Quiz dreams are never trained on, by any night.

CREATE TABLE night_dreams (
    night_id    INTEGER NOT NULL REFERENCES nights(id) ON DELETE CASCADE,
    dream_id    INTEGER NOT NULL REFERENCES dreams(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('train', 'replay', 'quiz')),
    PRIMARY KEY (night_id, dream_id)
);
CREATE INDEX night_dreams_dream ON night_dreams(dream_id);
