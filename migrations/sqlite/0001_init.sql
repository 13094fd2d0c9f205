-- kuma results store, SQLite flavour. Keep in step with migrations/postgres:
-- src/store runs the same statements on both.
-- Times are unix milliseconds; a NULL broadcast means "outside every poll window
-- / no schedule", stored as 0 in the counter tables so their keys stay unique.

CREATE TABLE calls (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign   TEXT    NOT NULL,
    caller     TEXT    NOT NULL,          -- a pseudonym, never a phone number
    channel    TEXT    NOT NULL,
    language   TEXT,
    started_at BIGINT  NOT NULL,
    ended_at   BIGINT,
    outcome    TEXT,
    last_node  TEXT,
    completed  BOOLEAN NOT NULL DEFAULT FALSE,
    broadcast  BIGINT
);
CREATE INDEX calls_by_campaign_started ON calls (campaign, started_at);

-- One row per (call, question): asked again in the same call, the last answer
-- counts. The primary key also serves "answers of this call".
CREATE TABLE answers (
    call        BIGINT NOT NULL REFERENCES calls (id),
    campaign    TEXT   NOT NULL,
    question    TEXT   NOT NULL,
    choice      TEXT   NOT NULL,
    digit       TEXT   NOT NULL,
    answered_at BIGINT NOT NULL,
    broadcast   BIGINT,
    PRIMARY KEY (call, question)
);
CREATE INDEX answers_by_campaign_answered ON answers (campaign, answered_at);

CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call        BIGINT NOT NULL REFERENCES calls (id),
    campaign    TEXT   NOT NULL,
    node        TEXT   NOT NULL,
    file        TEXT   NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX recordings_by_call ON recordings (call);

-- Counters, updated in the transaction that writes the row they count.

CREATE TABLE call_counts (
    campaign  TEXT   NOT NULL,
    broadcast BIGINT NOT NULL,
    calls     BIGINT NOT NULL DEFAULT 0,
    completed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, broadcast)
);

CREATE TABLE language_counts (
    campaign  TEXT   NOT NULL,
    broadcast BIGINT NOT NULL,
    language  TEXT   NOT NULL,
    calls     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, broadcast, language)
);

CREATE TABLE choice_counts (
    campaign  TEXT   NOT NULL,
    broadcast BIGINT NOT NULL,
    question  TEXT   NOT NULL,
    choice    TEXT   NOT NULL,
    count     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, broadcast, question, choice)
);

-- Calls that answered `question` with `choice` (in `broadcast`, the broadcast of
-- that answer) and `by_question` with `by_choice`. Keyed by by_question first:
-- a cross-tab reads one by_question.
CREATE TABLE pair_counts (
    campaign    TEXT   NOT NULL,
    by_question TEXT   NOT NULL,
    broadcast   BIGINT NOT NULL,
    question    TEXT   NOT NULL,
    choice      TEXT   NOT NULL,
    by_choice   TEXT   NOT NULL,
    count       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, by_question, broadcast, question, choice, by_choice)
);
