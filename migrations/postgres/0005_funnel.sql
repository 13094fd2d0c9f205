-- The funnel: which nodes each call entered, and per node how many calls reached
-- it and how many callers hung up there. Counted when written (in the
-- transaction that writes the visit or the call's end), not when read. Keep in
-- step with the other backend's migration.

-- One row per (call, node) the call entered at least once; serves the funnel of
-- a time range (joined to calls by started_at) and keeps a second visit from
-- counting twice.
CREATE TABLE call_nodes (
    call BIGINT NOT NULL REFERENCES calls (id),
    node TEXT   NOT NULL,
    PRIMARY KEY (call, node)
);

-- Keyed like call_counts: broadcast is the call's broadcast, 0 for none.
CREATE TABLE node_counts (
    campaign  TEXT   NOT NULL,
    broadcast BIGINT NOT NULL,
    node      TEXT   NOT NULL,
    reached   BIGINT NOT NULL DEFAULT 0,
    hung_up   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, broadcast, node)
);
