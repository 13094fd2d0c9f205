-- kuma's own facts about this database. `secret_fingerprint`: a fingerprint of
-- the secret that keys the pseudonyms and sealed numbers (an HMAC of a fixed
-- label, never the secret), so that a kuma started with another secret stops
-- instead of silently giving every caller a new pseudonym. Keep in step with the
-- other backend's folder.

CREATE TABLE kuma_facts (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
