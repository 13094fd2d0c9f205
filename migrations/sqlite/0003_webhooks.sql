-- Calls that come in through a voice provider's webhooks (Africa's Talking,
-- Twilio). Keep in step with migrations/postgres.
-- Times are unix milliseconds.

-- One row per provider call: the flow engine's state between two HTTP requests,
-- so that any kuma process (or one restarted) continues the call. `seq` counts
-- the steps applied; each reply's callback URLs carry it, and a step is applied
-- only while the row still has the seq it was computed from (an optimistic
-- check), so a replayed or reordered request never applies twice. `reply` is
-- the last XML sent, sent again to a replayed request.
CREATE TABLE webhook_sessions (
    provider   TEXT    NOT NULL,          -- africastalking or twilio
    session    TEXT    NOT NULL,          -- sessionId / CallSid
    campaign   TEXT    NOT NULL,
    call       BIGINT  REFERENCES calls (id), -- set in the transaction that claims the row
    state      TEXT    NOT NULL,          -- the engine's Call, as JSON
    seq        BIGINT  NOT NULL,
    reply      TEXT    NOT NULL,
    finished   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (provider, session)
);

-- A voice message the provider recorded and announced by URL, until its audio is
-- fetched into the recordings folder (then it gets its `recordings` row, in the
-- same transaction that marks it done). Kept when a fetch fails: retried later,
-- and at start-up.
CREATE TABLE recording_fetches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    call       BIGINT  NOT NULL REFERENCES calls (id),
    node       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending', -- pending, done, failed
    attempts   BIGINT  NOT NULL DEFAULT 0,
    last_error TEXT,
    recording  BIGINT,                   -- the recordings row, once done
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX recording_fetches_by_status ON recording_fetches (status);
