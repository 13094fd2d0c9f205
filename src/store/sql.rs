//! Every statement the store runs, written once for both backends.
//!
//! Placeholders are `$N`, which PostgreSQL requires and SQLite also accepts (a
//! repeated `$N` is the same parameter in both). Sums are cast to BIGINT because
//! PostgreSQL's SUM over BIGINT is NUMERIC. A missing broadcast is NULL in the raw
//! tables and 0 in the counter tables (see `NO_BROADCAST`).

// ---- calls -------------------------------------------------------------------

/// $1 campaign, $2 caller, $3 channel, $4 started_at, $5 broadcast → id
pub const INSERT_CALL: &str = "\
    INSERT INTO calls (campaign, caller, channel, started_at, broadcast) \
    VALUES ($1, $2, $3, $4, $5) RETURNING id";

/// PostgreSQL only: locks the call's row for the rest of the transaction, so that
/// writes to one call never interleave. (On SQLite, `BEGIN IMMEDIATE` already
/// holds the whole database.) Run before reading the call, so the read that follows
/// sees whatever the previous holder of the lock committed.
/// $1 call
pub const LOCK_CALL_POSTGRES: &str = "SELECT id FROM calls WHERE id = $1 FOR UPDATE";

/// $1 call → campaign, broadcast, language
pub const CALL: &str = "SELECT campaign, broadcast, language FROM calls WHERE id = $1";

/// The call's campaign and its current answer to question $2, if any.
/// $1 call, $2 question → campaign, choice, broadcast
pub const CALL_AND_ANSWER: &str = "\
    SELECT c.campaign, a.choice, a.broadcast \
    FROM calls c LEFT JOIN answers a ON a.call = c.id AND a.question = $2 \
    WHERE c.id = $1";

/// $1 call, $2 language
pub const SET_LANGUAGE: &str = "UPDATE calls SET language = $2 WHERE id = $1";

/// Marks the call completed unless it already was: only the first one returns a row.
/// $1 call → campaign, broadcast
pub const COMPLETE_CALL: &str = "\
    UPDATE calls SET completed = TRUE WHERE id = $1 AND NOT completed \
    RETURNING campaign, broadcast";

/// $1 call → id
pub const CALL_EXISTS: &str = "SELECT id FROM calls WHERE id = $1";

/// How the call ended so far (NULLs while it runs). $1 call → outcome, last_node
pub const CALL_END: &str = "SELECT outcome, last_node FROM calls WHERE id = $1";

/// $1 call, $2 ended_at, $3 outcome, $4 last_node
pub const END_CALL: &str = "\
    UPDATE calls SET ended_at = $2, outcome = $3, last_node = $4 WHERE id = $1";

/// A call that never reached its campaign, gone with nothing of its own (the
/// guard keeps any call that has: such a call is not withdrawn).
/// $1 call → campaign, broadcast
pub const WITHDRAW_CALL: &str = "\
    DELETE FROM calls WHERE id = $1 \
      AND NOT EXISTS (SELECT 1 FROM answers WHERE call = $1) \
      AND NOT EXISTS (SELECT 1 FROM call_nodes WHERE call = $1) \
      AND NOT EXISTS (SELECT 1 FROM recordings WHERE call = $1) \
      AND NOT EXISTS (SELECT 1 FROM recording_fetches WHERE call = $1) \
      AND NOT EXISTS (SELECT 1 FROM webhook_sessions WHERE call = $1) \
    RETURNING campaign, broadcast";

// ---- answers and recordings --------------------------------------------------

/// The last answer counts: a new one replaces the call's previous answer.
/// $1 call, $2 campaign, $3 question, $4 choice, $5 digit, $6 answered_at, $7 broadcast
pub const SAVE_ANSWER: &str = "\
    INSERT INTO answers (call, campaign, question, choice, digit, answered_at, broadcast) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (call, question) DO UPDATE SET \
        choice = excluded.choice, digit = excluded.digit, \
        answered_at = excluded.answered_at, broadcast = excluded.broadcast";

/// $1 call, $2 node, $3 file, $4 duration_ms, $5 created_at → id
pub const ADD_RECORDING: &str = "\
    INSERT INTO recordings (call, campaign, node, file, duration_ms, created_at) \
    SELECT id, campaign, $2, $3, $4, $5 FROM calls WHERE id = $1 \
    RETURNING id";

/// The recording already stored for this file of this call, if any.
/// $1 call, $2 file → id
pub const RECORDING_OF_FILE: &str = "SELECT id FROM recordings WHERE call = $1 AND file = $2";

// ---- counters (upserts: correct under concurrent writers) --------------------

/// $1 campaign, $2 broadcast key, $3 calls delta, $4 completed delta
pub const COUNT_CALL: &str = "\
    INSERT INTO call_counts (campaign, broadcast, calls, completed) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (campaign, broadcast) DO UPDATE SET \
        calls = call_counts.calls + excluded.calls, \
        completed = call_counts.completed + excluded.completed";

/// $1 campaign, $2 broadcast key, $3 language, $4 delta
pub const COUNT_LANGUAGE: &str = "\
    INSERT INTO language_counts (campaign, broadcast, language, calls) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (campaign, broadcast, language) DO UPDATE SET \
        calls = language_counts.calls + excluded.calls";

/// $1 campaign, $2 broadcast key, $3 question, $4 choice, $5 delta
pub const COUNT_CHOICE: &str = "\
    INSERT INTO choice_counts (campaign, broadcast, question, choice, count) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (campaign, broadcast, question, choice) DO UPDATE SET \
        count = choice_counts.count + excluded.count";

/// Adds `delta` to the cross-tab pairs of one answer (question $3 = choice $4, in
/// broadcast $2) with every other answer of call $1, in both directions: this
/// question by the other one (keyed by this answer's broadcast) and the other
/// question by this one (keyed by the other answer's broadcast).
/// Rows are upserted in key order so that concurrent PostgreSQL writers take their
/// row locks in the same order and do not deadlock. (`WHERE true` keeps SQLite's
/// parser from reading `ON CONFLICT` as a join constraint.)
/// $1 call, $2 broadcast key, $3 question, $4 choice, $5 delta
pub const COUNT_PAIRS: &str = "\
    INSERT INTO pair_counts (campaign, by_question, broadcast, question, choice, by_choice, count) \
    SELECT p.campaign, p.by_question, p.broadcast, p.question, p.choice, p.by_choice, p.delta \
    FROM ( \
        SELECT o.campaign AS campaign, o.question AS by_question, $2 AS broadcast, \
               $3 AS question, $4 AS choice, o.choice AS by_choice, $5 AS delta \
        FROM answers o WHERE o.call = $1 AND o.question <> $3 \
        UNION ALL \
        SELECT o.campaign, $3, COALESCE(o.broadcast, 0), o.question, o.choice, $4, $5 \
        FROM answers o WHERE o.call = $1 AND o.question <> $3 \
    ) p \
    WHERE true \
    ORDER BY p.campaign, p.by_question, p.broadcast, p.question, p.choice, p.by_choice \
    ON CONFLICT (campaign, by_question, broadcast, question, choice, by_choice) DO UPDATE SET \
        count = pair_counts.count + excluded.count";

// ---- reading the counters ----------------------------------------------------
// $1 campaign, $2 broadcast key or NULL for all, $3 by question

pub const COUNTED_CALLS: &str = "\
    SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT), CAST(COALESCE(SUM(completed), 0) AS BIGINT) \
    FROM call_counts WHERE campaign = $1 AND ($2 IS NULL OR broadcast = $2)";

pub const COUNTED_LANGUAGES: &str = "\
    SELECT language, CAST(SUM(calls) AS BIGINT) FROM language_counts \
    WHERE campaign = $1 AND ($2 IS NULL OR broadcast = $2) \
    GROUP BY language HAVING SUM(calls) > 0 ORDER BY language";

pub const COUNTED_CHOICES: &str = "\
    SELECT question, choice, CAST(SUM(count) AS BIGINT) FROM choice_counts \
    WHERE campaign = $1 AND ($2 IS NULL OR broadcast = $2) \
    GROUP BY question, choice HAVING SUM(count) > 0 ORDER BY question, choice";

pub const COUNTED_PAIRS: &str = "\
    SELECT question, choice, by_choice, CAST(SUM(count) AS BIGINT) FROM pair_counts \
    WHERE campaign = $1 AND by_question = $3 AND ($2 IS NULL OR broadcast = $2) \
    GROUP BY question, choice, by_choice HAVING SUM(count) > 0 \
    ORDER BY question, choice, by_choice";

// ---- reading raw rows in a time range (half-open [since, until)) ---------------
// $1 campaign, $2 broadcast or NULL for all, $3 since, $4 until, $5 by question.
// The range is always bound (missing ends as the extreme i64 values) so that the
// (campaign, time) indexes serve every query.

pub const RANGE_CALLS: &str = "\
    SELECT COUNT(*), COALESCE(SUM(CASE WHEN completed THEN 1 ELSE 0 END), 0) FROM calls \
    WHERE campaign = $1 AND started_at >= $3 AND started_at < $4 \
      AND ($2 IS NULL OR broadcast = $2)";

pub const RANGE_LANGUAGES: &str = "\
    SELECT language, COUNT(*) FROM calls \
    WHERE campaign = $1 AND started_at >= $3 AND started_at < $4 \
      AND ($2 IS NULL OR broadcast = $2) AND language IS NOT NULL \
    GROUP BY language ORDER BY language";

pub const RANGE_CHOICES: &str = "\
    SELECT question, choice, COUNT(*) FROM answers \
    WHERE campaign = $1 AND answered_at >= $3 AND answered_at < $4 \
      AND ($2 IS NULL OR broadcast = $2) \
    GROUP BY question, choice ORDER BY question, choice";

/// Answers in the range, each paired with the same call's answer to $5 (at any time).
pub const RANGE_PAIRS: &str = "\
    SELECT a.question, a.choice, b.choice, COUNT(*) \
    FROM answers a JOIN answers b ON b.call = a.call AND b.question = $5 \
    WHERE a.campaign = $1 AND a.answered_at >= $3 AND a.answered_at < $4 \
      AND ($2 IS NULL OR a.broadcast = $2) AND a.question <> $5 \
    GROUP BY a.question, a.choice, b.choice ORDER BY a.question, a.choice, b.choice";

/// $1 campaign, $2 broadcast or NULL, $3 since, $4 until
pub const EXPORT_ANSWERS: &str = "\
    SELECT a.call, c.caller, c.language, a.question, a.choice, a.digit, a.answered_at, a.broadcast \
    FROM answers a JOIN calls c ON c.id = a.call \
    WHERE a.campaign = $1 AND a.answered_at >= $3 AND a.answered_at < $4 \
      AND ($2 IS NULL OR a.broadcast = $2) \
    ORDER BY a.answered_at, a.call, a.question";

/// Every broadcast with calls or answers, oldest first. $1 campaign
pub const BROADCASTS: &str = "\
    SELECT t.broadcast, CAST(SUM(t.calls) AS BIGINT), CAST(SUM(t.answers) AS BIGINT) \
    FROM ( \
        SELECT broadcast, calls, 0 AS answers FROM call_counts \
        WHERE campaign = $1 AND broadcast <> 0 \
        UNION ALL \
        SELECT broadcast, 0, count FROM choice_counts \
        WHERE campaign = $1 AND broadcast <> 0 \
    ) t \
    GROUP BY t.broadcast HAVING SUM(t.calls) > 0 OR SUM(t.answers) > 0 \
    ORDER BY t.broadcast";

// ---- the funnel (nodes reached, where callers hung up) -------------------------

/// The call entered node $2; no row when it had already (or the call is unknown).
/// $1 call, $2 node
pub const VISIT_NODE: &str = "\
    INSERT INTO call_nodes (call, node) SELECT id, $2 FROM calls WHERE id = $1 \
    ON CONFLICT (call, node) DO NOTHING";

/// Adds to node $2's counters, under call $1's campaign and broadcast.
/// $1 call, $2 node, $3 reached delta, $4 hung_up delta
pub const COUNT_NODE: &str = "\
    INSERT INTO node_counts (campaign, broadcast, node, reached, hung_up) \
    SELECT campaign, COALESCE(broadcast, 0), $2, $3, $4 FROM calls WHERE id = $1 \
    ON CONFLICT (campaign, broadcast, node) DO UPDATE SET \
        reached = node_counts.reached + excluded.reached, \
        hung_up = node_counts.hung_up + excluded.hung_up";

/// $1 campaign, $2 broadcast key or NULL for all → node, reached, hung_up
pub const COUNTED_NODES: &str = "\
    SELECT node, CAST(SUM(reached) AS BIGINT), CAST(SUM(hung_up) AS BIGINT) \
    FROM node_counts WHERE campaign = $1 AND ($2 IS NULL OR broadcast = $2) \
    GROUP BY node ORDER BY node";

/// Calls started in [$3, $4) per node entered.
/// $1 campaign, $2 broadcast or NULL, $3 since, $4 until → node, reached
pub const RANGE_NODES_REACHED: &str = "\
    SELECT n.node, COUNT(*) FROM calls c JOIN call_nodes n ON n.call = c.id \
    WHERE c.campaign = $1 AND c.started_at >= $3 AND c.started_at < $4 \
      AND ($2 IS NULL OR c.broadcast = $2) \
    GROUP BY n.node ORDER BY n.node";

/// Calls started in [$3, $4) whose caller hung up, per node they were at.
/// $1 campaign, $2 broadcast or NULL, $3 since, $4 until → node, hung_up
pub const RANGE_NODES_HUNG_UP: &str = "\
    SELECT last_node, COUNT(*) FROM calls \
    WHERE campaign = $1 AND started_at >= $3 AND started_at < $4 \
      AND ($2 IS NULL OR broadcast = $2) \
      AND outcome = 'caller_hangup' AND last_node IS NOT NULL \
    GROUP BY last_node ORDER BY last_node";

/// Calls started in [$2, $3), per hour (the hour's start, unix ms; integer
/// division in both backends). Hours without calls are absent. $1 campaign
pub const CALLS_PER_HOUR: &str = "\
    SELECT (started_at / 3600000) * 3600000 AS hour, COUNT(*) FROM calls \
    WHERE campaign = $1 AND started_at >= $2 AND started_at < $3 \
    GROUP BY (started_at / 3600000) * 3600000 ORDER BY hour";
