-- Studio PINs (`kuma token pin NAME`): a broadcaster or admin token may carry a
-- 6-digit PIN for the studio number (`studio_numbers`), where broadcasters
-- record prompts by phone. Only a keyed hash of the PIN is stored (HMAC-SHA256
-- under a key derived from the server secret), so a copy of the database alone
-- does not give the PINs away even though there are only a million of them; the
-- unique index keeps two tokens from sharing one. A revoked token's PIN stops
-- working with it.
--
-- Wrong PINs are counted per caller (pseudonym, never a number) and in all:
-- 5 wrong tries from one caller, or 20 from everyone, within an hour lock the
-- studio's PIN entry (for that caller, or for all) until the hour has passed.
-- Keep in step with the other backend's folder. Times are unix milliseconds.

ALTER TABLE tokens ADD COLUMN pin_hash TEXT;
CREATE UNIQUE INDEX tokens_pin_hash ON tokens (pin_hash);

CREATE TABLE pin_failures (
    caller TEXT   NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX pin_failures_at ON pin_failures (at);
