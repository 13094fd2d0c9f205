-- Missed-call call-backs and outbound calls (issue 6): the queue of listeners kuma
-- dials, kept in the database so that nothing is lost on restart and several kuma
-- processes never dial the same listener twice (claimed with FOR UPDATE SKIP
-- LOCKED). Keep in step with migrations/sqlite. Times are unix milliseconds.

-- One row per call-back asked for (a missed call), or refused (with `note` saying
-- why). `number` is the listener's phone number sealed with XChaCha20-Poly1305
-- under a key derived from the server secret: the only place kuma keeps a number,
-- and only until the call-back is over (then NULL).
CREATE TABLE callbacks (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign   TEXT   NOT NULL,
    caller     TEXT   NOT NULL,           -- the pseudonym, for quotas and analysts
    number     BYTEA,                     -- sealed; NULL once the call-back is over
    status     TEXT   NOT NULL,           -- queued, dialing, answered, busy, no_answer, failed, cancelled, refused
    note       TEXT,                      -- why refused, or the last SIP code
    attempts   BIGINT NOT NULL DEFAULT 0,
    next_at    BIGINT,                    -- when a queued call-back is dialled next
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    claimed_by TEXT,                      -- the kuma process that dialled it last
    call       BIGINT,                    -- the answered call (calls.id)
    broadcast  BIGINT                     -- a call to a subscriber: the broadcast it follows
);
CREATE INDEX callbacks_due ON callbacks (status, next_at);
CREATE INDEX callbacks_by_caller ON callbacks (caller, created_at);
CREATE INDEX callbacks_by_campaign ON callbacks (campaign, created_at);
-- A subscriber is queued once per broadcast, however many processes try (NULL
-- broadcasts, the missed calls, are all distinct).
CREATE UNIQUE INDEX callbacks_once_per_broadcast ON callbacks (campaign, caller, broadcast);

-- Every dialling attempt and how it ended: ringing while it rings, then answered,
-- busy, no_answer, failed or cancelled.
CREATE TABLE callback_attempts (
    callback   BIGINT NOT NULL REFERENCES callbacks (id),
    attempt    BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    status     TEXT   NOT NULL,
    sip_code   BIGINT,
    PRIMARY KEY (callback, attempt)
);

-- Listeners who asked to be called after each broadcast (a question's `subscribe`
-- choice). The number is sealed like a call-back's; unsubscribing deletes the row.
CREATE TABLE subscribers (
    campaign      TEXT   NOT NULL,
    caller        TEXT   NOT NULL,        -- the pseudonym
    number        BYTEA  NOT NULL,       -- sealed
    subscribed_at BIGINT NOT NULL,
    PRIMARY KEY (campaign, caller)
);
