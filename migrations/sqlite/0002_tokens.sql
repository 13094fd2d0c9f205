-- API bearer tokens (kuma token create|list|revoke). Only the SHA-256 of a token
-- is stored: the token itself is printed once and never kept. Keep in step with
-- migrations/postgres. Times are unix milliseconds.

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,           -- analyst, broadcaster or admin
    hash       TEXT    NOT NULL UNIQUE,    -- hex SHA-256 of the token
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT                      -- NULL while the token works
);
