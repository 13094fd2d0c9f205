//! Recording what happens in calls: each write stores its row and updates the
//! counters that include it in one transaction, committed before the call returns,
//! so results read at any moment are exact and survive a crash mid-call.

use sqlx::{Postgres, Sqlite, Transaction};

use crate::flow::Outcome;

use super::{
    CallEnd, CallRow, NO_BROADCAST, NewAnswer, NewCall, NewRecording, Store, StoreError, WriteOp,
    millis, sql, with_pool, write_tx,
};

// The body of each write, once: run alone in its own transaction by its method
// below, or with the other writes of a batch in one ([`Store::apply_all`]).
// `$tx` is the transaction, the other arguments the write's values.

macro_rules! set_language_body {
    ($tx:ident, $call:ident, $language:ident) => {{
        $tx.lock_call($call).await?;
        let (campaign, broadcast, old): (String, Option<i64>, Option<String>) =
            sqlx::query_as(sql::CALL)
                .bind($call)
                .fetch_optional(&mut *$tx)
                .await?
                .ok_or(StoreError::UnknownCall($call))?;
        if old.as_deref() != Some($language) {
            sqlx::query(sql::SET_LANGUAGE)
                .bind($call)
                .bind($language)
                .execute(&mut *$tx)
                .await?;
            let moves = old.as_deref().map(|l| (l, -1_i64)).into_iter();
            for (lang, delta) in moves.chain([($language, 1_i64)]) {
                sqlx::query(sql::COUNT_LANGUAGE)
                    .bind(&campaign)
                    .bind(broadcast.unwrap_or(NO_BROADCAST))
                    .bind(lang)
                    .bind(delta)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}

macro_rules! store_answer_body {
    ($tx:ident, $a:ident, $answered_at:ident, $broadcast:ident) => {{
        $tx.lock_call($a.call).await?;
        let (campaign, previous_choice, previous_broadcast): (String, Option<String>, Option<i64>) =
            sqlx::query_as(sql::CALL_AND_ANSWER)
                .bind($a.call)
                .bind($a.question)
                .fetch_optional(&mut *$tx)
                .await?
                .ok_or(StoreError::UnknownCall($a.call))?;
        let previous = previous_choice.map(|choice| (choice, previous_broadcast));

        // (choice, broadcast key, delta) for every count this answer changes.
        let mut changes: Vec<(String, i64, i64)> = Vec::with_capacity(2);
        match previous {
            Some((choice, b)) if choice == $a.choice && b == $broadcast => {}
            Some((choice, b)) => {
                changes.push((choice, b.unwrap_or(NO_BROADCAST), -1));
                changes.push(($a.choice.to_owned(), $broadcast.unwrap_or(NO_BROADCAST), 1));
            }
            None => {
                changes.push(($a.choice.to_owned(), $broadcast.unwrap_or(NO_BROADCAST), 1));
            }
        }

        // Every writer touches counter rows in one global order (by choice),
        // so two calls replacing answers in opposite directions (yes -> no,
        // no -> yes) cannot deadlock on PostgreSQL.
        changes.sort();

        sqlx::query(sql::SAVE_ANSWER)
            .bind($a.call)
            .bind(&campaign)
            .bind($a.question)
            .bind($a.choice)
            .bind($a.digit)
            .bind($answered_at)
            .bind($broadcast)
            .execute(&mut *$tx)
            .await?;

        // The pair counts pair this question with the call's *other* answers, so
        // it does not matter that the answer row was replaced first.
        for (choice, key, delta) in &changes {
            sqlx::query(sql::COUNT_CHOICE)
                .bind(&campaign)
                .bind(*key)
                .bind($a.question)
                .bind(choice)
                .bind(*delta)
                .execute(&mut *$tx)
                .await?;
            sqlx::query(sql::COUNT_PAIRS)
                .bind($a.call)
                .bind(*key)
                .bind($a.question)
                .bind(choice)
                .bind(*delta)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

macro_rules! mark_completed_body {
    ($tx:ident, $call:ident) => {{
        let first: Option<(String, Option<i64>)> = sqlx::query_as(sql::COMPLETE_CALL)
            .bind($call)
            .fetch_optional(&mut *$tx)
            .await?;
        match first {
            Some((campaign, broadcast)) => {
                sqlx::query(sql::COUNT_CALL)
                    .bind(&campaign)
                    .bind(broadcast.unwrap_or(NO_BROADCAST))
                    .bind(0_i64)
                    .bind(1_i64)
                    .execute(&mut *$tx)
                    .await?;
            }
            None => {
                let known: Option<CallRow> = sqlx::query_scalar(sql::CALL_EXISTS)
                    .bind($call)
                    .fetch_optional(&mut *$tx)
                    .await?;
                known.ok_or(StoreError::UnknownCall($call))?;
            }
        }
    }};
}

macro_rules! end_call_body {
    ($tx:ident, $call:ident, $e:ident, $ended_at:ident, $after:ident) => {{
        $tx.lock_call($call).await?;
        let (outcome, last_node): (Option<String>, Option<String>) = sqlx::query_as(sql::CALL_END)
            .bind($call)
            .fetch_optional(&mut *$tx)
            .await?
            .ok_or(StoreError::UnknownCall($call))?;
        let before = outcome
            .as_deref()
            .and_then(|o| hung_up_at(o, last_node.as_deref()));
        sqlx::query(sql::END_CALL)
            .bind($call)
            .bind($ended_at)
            .bind($e.outcome)
            .bind($e.last_node)
            .execute(&mut *$tx)
            .await?;
        if before != $after {
            // In one global order (by node), as the answers' counters.
            let mut changes: Vec<(&str, i64)> = before
                .map(|n| (n, -1))
                .into_iter()
                .chain($after.map(|n| (n, 1)))
                .collect();
            changes.sort();
            for (node, delta) in changes {
                sqlx::query(sql::COUNT_NODE)
                    .bind($call)
                    .bind(node)
                    .bind(0_i64)
                    .bind(delta)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}

macro_rules! visit_node_body {
    ($tx:ident, $call:ident, $node:ident) => {{
        let first = sqlx::query(sql::VISIT_NODE)
            .bind($call)
            .bind($node)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if first == 1 {
            sqlx::query(sql::COUNT_NODE)
                .bind($call)
                .bind($node)
                .bind(1_i64)
                .bind(0_i64)
                .execute(&mut *$tx)
                .await?;
        } else {
            let known: Option<CallRow> = sqlx::query_scalar(sql::CALL_EXISTS)
                .bind($call)
                .fetch_optional(&mut *$tx)
                .await?;
            known.ok_or(StoreError::UnknownCall($call))?;
        }
    }};
}

impl Store {
    /// Stores a call that reached a campaign and counts it; returns its id.
    pub async fn start_call(&self, c: &NewCall<'_>) -> Result<CallRow, StoreError> {
        let started_at = millis(c.started_at);
        let broadcast = c.broadcast.map(millis);
        write_tx!(self, |tx| {
            let id: CallRow = sqlx::query_scalar(sql::INSERT_CALL)
                .bind(c.campaign)
                .bind(c.caller)
                .bind(c.channel)
                .bind(started_at)
                .bind(broadcast)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(sql::COUNT_CALL)
                .bind(c.campaign)
                .bind(broadcast.unwrap_or(NO_BROADCAST))
                .bind(1_i64)
                .bind(0_i64)
                .execute(&mut *tx)
                .await?;
            id
        })
    }

    /// Sets the call's language and counts the call for it. Setting another
    /// language later moves the call's count to that one.
    pub async fn set_language(&self, call: CallRow, language: &str) -> Result<(), StoreError> {
        write_tx!(self, |tx| { set_language_body!(tx, call, language) })
    }

    /// Stores an answer, replacing the call's previous answer to the same question
    /// (the last answer counts), and moves the counts accordingly. Committed
    /// before it returns.
    pub async fn store_answer(&self, a: &NewAnswer<'_>) -> Result<(), StoreError> {
        let answered_at = millis(a.at);
        let broadcast = a.broadcast.map(millis);
        write_tx!(self, |tx| {
            store_answer_body!(tx, a, answered_at, broadcast)
        })
    }

    /// Marks the call completed (it reached a hangup node). Idempotent: a call is
    /// counted as completed once, however often this is called.
    pub async fn mark_completed(&self, call: CallRow) -> Result<(), StoreError> {
        write_tx!(self, |tx| { mark_completed_body!(tx, call) })
    }

    /// Records how the call ended. A caller who hung up is counted at the node
    /// the call was at (the funnel's `hung_up`), in the same transaction; ending
    /// a call again (a late report) moves that count, never adds a second one.
    pub async fn end_call(&self, call: CallRow, e: &CallEnd<'_>) -> Result<(), StoreError> {
        let ended_at = millis(e.ended_at);
        let after = hung_up_at(e.outcome, e.last_node);
        write_tx!(self, |tx| { end_call_body!(tx, call, e, ended_at, after) })
    }

    /// The call entered `node`: counted once per call and node (the funnel's
    /// `reached`), however often the call comes back to it.
    pub async fn visit_node(&self, call: CallRow, node: &str) -> Result<(), StoreError> {
        write_tx!(self, |tx| { visit_node_body!(tx, call, node) })
    }

    /// Applies a call's writes `ops`, in order, in one transaction: one commit
    /// (and, on SQLite, one turn of the writer) where each alone took its own.
    /// A call's writes come in bursts (an answer and the next node, the
    /// language and the next node), and under load the transactions, not the
    /// statements, were most of the store's cost (issue 16).
    ///
    /// All or nothing: should one fail, none is stored, and the caller may
    /// apply them one by one to learn which (`store::spool::SpooledStore::write_all`).
    /// `Ok(false)`, with nothing done, when one of them is not a call's progress
    /// (a visit, language, answer, completion or end): recordings and
    /// subscriptions are applied alone, as before.
    pub async fn apply_all(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        if !ops.iter().all(WriteOp::batches) {
            return Ok(false);
        }
        write_tx!(self, |tx| {
            for op in ops {
                match op {
                    WriteOp::Visit { call, node } => {
                        let (call, node) = (*call, node.as_str());
                        visit_node_body!(tx, call, node)
                    }
                    WriteOp::Language { call, language } => {
                        let (call, language) = (*call, language.as_str());
                        set_language_body!(tx, call, language)
                    }
                    WriteOp::Answer {
                        call,
                        question,
                        choice,
                        digit,
                        at,
                        broadcast,
                    } => {
                        let a = NewAnswer {
                            call: *call,
                            question,
                            choice,
                            digit,
                            at: *at,
                            broadcast: *broadcast,
                        };
                        let answered_at = millis(a.at);
                        let broadcast = a.broadcast.map(millis);
                        store_answer_body!(tx, a, answered_at, broadcast)
                    }
                    WriteOp::Completed { call } => {
                        let call = *call;
                        mark_completed_body!(tx, call)
                    }
                    WriteOp::End {
                        call,
                        at,
                        outcome,
                        last_node,
                    } => {
                        let call = *call;
                        let e = CallEnd {
                            ended_at: *at,
                            outcome,
                            last_node: last_node.as_deref(),
                        };
                        let ended_at = millis(e.ended_at);
                        let after = hung_up_at(e.outcome, e.last_node);
                        end_call_body!(tx, call, e, ended_at, after)
                    }
                    // Refused above.
                    WriteOp::Recording { .. }
                    | WriteOp::Subscribe { .. }
                    | WriteOp::Unsubscribe { .. } => {}
                }
            }
            true
        })
    }

    /// Stores a voice message's metadata (the audio itself is a file); returns its id.
    /// Storing the same file of the same call again returns the row already there
    /// (a spooled write replayed), never a second one.
    pub async fn add_recording(&self, r: &NewRecording<'_>) -> Result<i64, StoreError> {
        let duration_ms = i64::try_from(r.duration.as_millis()).unwrap_or(i64::MAX);
        let created_at = millis(r.at);
        write_tx!(self, |tx| {
            tx.lock_call(r.call).await?;
            let known: Option<i64> = sqlx::query_scalar(sql::RECORDING_OF_FILE)
                .bind(r.call)
                .bind(r.file)
                .fetch_optional(&mut *tx)
                .await?;
            match known {
                Some(id) => id,
                None => {
                    let id: Option<i64> = sqlx::query_scalar(sql::ADD_RECORDING)
                        .bind(r.call)
                        .bind(r.node)
                        .bind(r.file)
                        .bind(duration_ms)
                        .bind(created_at)
                        .fetch_optional(&mut *tx)
                        .await?;
                    id.ok_or(StoreError::UnknownCall(r.call))?
                }
            }
        })
    }

    /// Whether the database answers now (a cheap round trip).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// The node a call's caller hung up at, if the call ended that way.
fn hung_up_at<'a>(outcome: &str, last_node: Option<&'a str>) -> Option<&'a str> {
    last_node.filter(|_| outcome == Outcome::CallerHangup.as_str())
}

/// Row locks that one backend needs and the other does not.
trait LockCall {
    /// Holds the call's row until the transaction ends, so that writes to one call
    /// never interleave.
    async fn lock_call(&mut self, call: CallRow) -> Result<(), sqlx::Error>;
}

impl LockCall for Transaction<'_, Sqlite> {
    async fn lock_call(&mut self, _call: CallRow) -> Result<(), sqlx::Error> {
        // `BEGIN IMMEDIATE` already holds the whole database.
        Ok(())
    }
}

impl LockCall for Transaction<'_, Postgres> {
    async fn lock_call(&mut self, call: CallRow) -> Result<(), sqlx::Error> {
        sqlx::query(sql::LOCK_CALL_POSTGRES)
            .bind(call)
            .execute(&mut **self)
            .await
            .map(|_| ())
    }
}
