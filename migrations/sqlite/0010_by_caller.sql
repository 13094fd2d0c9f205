-- Erasure on request (`kuma forget`) finds a listener's calls by pseudonym,
-- as joining a number's spellings does; deleting a call checks the rows that
-- point at it. Without these, each was a scan of the whole table, inside a
-- write transaction that calls in progress wait for. Keep in step with
-- migrations/postgres.
CREATE INDEX calls_by_caller ON calls (caller);
CREATE INDEX webhook_sessions_by_call ON webhook_sessions (call);
CREATE INDEX recording_fetches_by_call ON recording_fetches (call);
