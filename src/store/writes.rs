//! Recording what happens in calls: each write stores its row and updates the
//! counters that include it in one transaction, committed before the call returns,
//! so results read at any moment are exact and survive a crash mid-call.
//!
//! A call's progress (a node reached, its language, an answer, completion, its
//! end) is written by one function, `apply_ops` (through [`Store::apply_here`]),
//! whether one write or a call's burst of them goes into the transaction; the
//! methods for each write ([`Store::set_language`]…) hand it a [`WriteOp`].
//! It is written once for both backends against `progress_tx::ProgressTx`:
//! an sqlx transaction on PostgreSQL, on SQLite a rusqlite one run on the
//! writer thread itself (`direct.rs`). Calls' writes run on the store's writer
//! thread (`writer_thread.rs`), never on the runtime that paces calls' audio.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Postgres, Sqlite, Transaction};

use crate::flow::Outcome;

use super::progress_tx::{Arg::*, ProgressTx};
use super::{
    CallEnd, CallRow, NO_BROADCAST, NewAnswer, NewCall, NewRecording, Store, StoreError, Unwritten,
    WriteOp, group::unavailable, millis, progress_write, sql, with_pool, write_tx,
};

impl Store {
    /// Stores a call that reached a campaign and counts it; returns its id.
    pub async fn start_call(&self, c: &NewCall<'_>) -> Result<CallRow, StoreError> {
        let started_at = millis(c.started_at);
        let broadcast = c.broadcast.map(millis);
        let (campaign, caller, channel) = (
            c.campaign.to_owned(),
            c.caller.to_owned(),
            c.channel.to_owned(),
        );
        self.on_writer(move |store| async move {
            let call = (campaign.as_str(), caller.as_str(), channel.as_str());
            progress_write!(store, None, |tx| insert_call(
                tx, call, started_at, broadcast
            ))
        })
        .await
    }

    /// Sets the call's language and counts the call for it. Setting another
    /// language later moves the call's count to that one.
    pub async fn set_language(&self, call: CallRow, language: &str) -> Result<(), StoreError> {
        self.apply_one(WriteOp::Language {
            call,
            language: language.to_owned(),
        })
        .await
    }

    /// Stores an answer, replacing the call's previous answer to the same question
    /// (the last answer counts), and moves the counts accordingly. Committed
    /// before it returns.
    pub async fn store_answer(&self, a: &NewAnswer<'_>) -> Result<(), StoreError> {
        self.apply_one(WriteOp::Answer {
            call: a.call,
            question: a.question.to_owned(),
            choice: a.choice.to_owned(),
            digit: a.digit.to_owned(),
            at: a.at,
            broadcast: a.broadcast,
        })
        .await
    }

    /// Marks the call completed (it reached a hangup node). Idempotent: a call is
    /// counted as completed once, however often this is called.
    pub async fn mark_completed(&self, call: CallRow) -> Result<(), StoreError> {
        self.apply_one(WriteOp::Completed { call }).await
    }

    /// Records how the call ended. A caller who hung up is counted at the node
    /// the call was at (the funnel's `hung_up`), in the same transaction; ending
    /// a call again (a late report) moves that count, never adds a second one.
    pub async fn end_call(&self, call: CallRow, e: &CallEnd<'_>) -> Result<(), StoreError> {
        self.apply_one(WriteOp::End {
            call,
            at: e.ended_at,
            outcome: e.outcome.to_owned(),
            last_node: e.last_node.map(str::to_owned),
        })
        .await
    }

    /// The call entered `node`: counted once per call and node (the funnel's
    /// `reached`), however often the call comes back to it.
    pub async fn visit_node(&self, call: CallRow, node: &str) -> Result<(), StoreError> {
        self.apply_one(WriteOp::Visit {
            call,
            node: node.to_owned(),
        })
        .await
    }

    /// Applies a call's writes `ops`, in order, in one transaction: one commit
    /// (and, on SQLite, one turn of the writer) where each alone took its own.
    /// A call's writes come in bursts (an answer and the next node, the
    /// language and the next node), and under load the transactions, not the
    /// statements, were most of the store's cost (issue 16).
    ///
    /// All or nothing: should one fail, none is stored, and `ops` come back
    /// with the error, so that the caller may apply them one by one to learn
    /// which (`store::spool::SpooledStore::write_all`). So they do, with
    /// nothing done, when one of them is not a call's progress (a visit,
    /// language, answer, completion or end: [`StoreError::NotBatched`]):
    /// recordings and subscriptions are applied alone, as before.
    pub async fn apply_all(&self, ops: Vec<WriteOp>) -> Result<(), Unwritten> {
        if !ops.iter().all(WriteOp::batches) {
            return Err(Unwritten {
                error: StoreError::NotBatched,
                ops,
            });
        }
        self.lend(ops, None).await
    }

    /// Applies one write of a call's progress (see [`WriteOp::batches`]) in a
    /// transaction of its own.
    pub(super) async fn apply_one(&self, op: WriteOp) -> Result<(), StoreError> {
        Ok(self.lend(vec![op], None).await?)
    }

    /// Moves `ops` (a call's progress, one recording or one subscription) to
    /// the writer thread,
    /// which writes them in one transaction, given up after `within` if set
    /// (then rolled back, or committed if the commit had begun: every write
    /// may be applied again). Those not written come back with the error, so a
    /// caller that keeps them (the spool) never copies them beforehand, and
    /// the path from a call to the writer thread copies none.
    pub(super) async fn lend(
        &self,
        ops: Vec<WriteOp>,
        within: Option<Duration>,
    ) -> Result<(), Unwritten> {
        let writer = match self.writer().await {
            Ok(writer) => writer,
            Err(error) => return Err(Unwritten { error, ops }),
        };
        let store = self.clone();
        let job = async move {
            let until = within.map(|d| Instant::now() + d);
            let result = deadline(within, store.write_here(&ops, until)).await;
            result.map_err(|error| Unwritten { error, ops })
        };
        match writer.spawn(job).await {
            Ok(out) => out,
            // The job panicked (a bug) and its writes went with it: an error
            // that does not read as the database away, since they cannot be
            // spooled.
            Err(e) => Err(Unwritten {
                error: StoreError::WriterThread(format!("a write was lost: {e}")),
                ops: Vec::new(),
            }),
        }
    }

    /// Writes what [`Store::lend`] hands over, on the writer thread, by
    /// `until` if set.
    async fn write_here(&self, ops: &[WriteOp], until: Option<Instant>) -> Result<(), StoreError> {
        match ops {
            [
                WriteOp::Recording {
                    call,
                    node,
                    file,
                    duration_ms,
                    at,
                },
            ] => self
                .add_recording_here(&NewRecording {
                    call: *call,
                    node,
                    file,
                    duration: Duration::from_millis(*duration_ms),
                    at: *at,
                })
                .await
                .map(|_| ()),
            [op @ (WriteOp::Subscribe { .. } | WriteOp::Unsubscribe { .. })] => {
                op.subscription(self).await
            }
            ops if ops.iter().all(WriteOp::batches) => self.apply_here(ops, until).await,
            _ => Err(StoreError::NotBatched),
        }
    }

    /// Writes a call's progress `ops` in one transaction, on the thread this
    /// runs on (the writer thread: [`Store::lend`]), by `until` if set (on
    /// SQLite, where a statement cannot be cut short, it bounds the wait for
    /// another process's write lock).
    async fn apply_here(&self, ops: &[WriteOp], until: Option<Instant>) -> Result<(), StoreError> {
        progress_write!(self, until, |tx| apply_ops(tx, ops))
    }

    /// Stores a voice message's metadata (the audio itself is a file); returns its id.
    /// Storing the same file of the same call again returns the row already there
    /// (a spooled write replayed), never a second one.
    pub async fn add_recording(&self, r: &NewRecording<'_>) -> Result<i64, StoreError> {
        let (node, file) = (r.node.to_owned(), r.file.to_owned());
        let (call, duration, at) = (r.call, r.duration, r.at);
        self.on_writer(move |store| async move {
            store
                .add_recording_here(&NewRecording {
                    call,
                    node: &node,
                    file: &file,
                    duration,
                    at,
                })
                .await
        })
        .await
    }

    /// What [`Store::add_recording`] does, on the thread this runs on (the
    /// writer thread).
    async fn add_recording_here(&self, r: &NewRecording<'_>) -> Result<i64, StoreError> {
        let duration_ms = i64::try_from(r.duration.as_millis()).unwrap_or(i64::MAX);
        let created_at = millis(r.at);
        let call = r.call;
        write_tx!(self, |tx| {
            LockCall::lock_call(&mut tx, call).await?;
            let known: Option<i64> = sqlx::query_scalar(sql::RECORDING_OF_FILE)
                .bind(call)
                .bind(r.file)
                .fetch_optional(&mut *tx)
                .await?;
            match known {
                Some(id) => id,
                None => {
                    let id: Option<i64> = sqlx::query_scalar(sql::ADD_RECORDING)
                        .bind(call)
                        .bind(r.node)
                        .bind(r.file)
                        .bind(duration_ms)
                        .bind(created_at)
                        .fetch_optional(&mut *tx)
                        .await?;
                    id.ok_or(StoreError::UnknownCall(call))?
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

/// `write`, given up after `within` if set, with an error that reads as the
/// database away (`StoreError::is_unavailable`: the caller spools what it
/// could not write).
async fn deadline<T>(
    within: Option<Duration>,
    write: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match within {
        Some(d) => tokio::time::timeout(d, write).await.unwrap_or_else(|_| {
            Err(unavailable(format!(
                "no commit within {} s",
                d.as_secs_f32()
            )))
        }),
        None => write.await,
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

/// Stores a call's row and counts it (`Store::start_call`, a provider call's
/// start in `webhooks.rs`); returns its id.
pub(super) async fn insert_call<T: ProgressTx>(
    tx: &mut T,
    (campaign, caller, channel): (&str, &str, &str),
    started_at: i64,
    broadcast: Option<i64>,
) -> Result<CallRow, StoreError> {
    let (id,): (CallRow,) = tx
        .row(
            sql::INSERT_CALL,
            &[
                Text(campaign),
                Text(caller),
                Text(channel),
                Int(started_at),
                MaybeInt(broadcast),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::BadValue("no id for the new call".into()))?;
    count_call(tx, campaign, broadcast, 1, 0).await?;
    Ok(id)
}

/// Adds to a campaign's (and broadcast's) call counters.
async fn count_call<T: ProgressTx>(
    tx: &mut T,
    campaign: &str,
    broadcast: Option<i64>,
    calls: i64,
    completed: i64,
) -> Result<(), StoreError> {
    tx.execute(
        sql::COUNT_CALL,
        &[
            Text(campaign),
            Int(broadcast.unwrap_or(NO_BROADCAST)),
            Int(calls),
            Int(completed),
        ],
    )
    .await?;
    Ok(())
}

/// Fails with [`StoreError::UnknownCall`] unless `call` is in the store.
async fn known_call<T: ProgressTx>(tx: &mut T, call: CallRow) -> Result<(), StoreError> {
    let known: Option<(CallRow,)> = tx.row(sql::CALL_EXISTS, &[Int(call)]).await?;
    known.map(|_| ()).ok_or(StoreError::UnknownCall(call))
}

/// Writes a call's progress `ops`, in order, in the transaction `tx`
/// ([`Store::apply_here`]). The only place these writes' SQL is written.
/// Other writes (recordings, subscriptions) are left alone: the callers never
/// pass them.
async fn apply_ops<T: ProgressTx>(tx: &mut T, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        match op {
            WriteOp::Visit { call, node } => {
                let (call, node) = (*call, node.as_str());
                let first = tx
                    .execute(sql::VISIT_NODE, &[Int(call), Text(node)])
                    .await?;
                if first == 1 {
                    tx.execute(sql::COUNT_NODE, &[Int(call), Text(node), Int(1), Int(0)])
                        .await?;
                } else {
                    known_call(tx, call).await?;
                }
            }
            WriteOp::Language { call, language } => {
                let (call, language) = (*call, language.as_str());
                tx.lock_call(call).await?;
                let (campaign, broadcast, old): (String, Option<i64>, Option<String>) = tx
                    .row(sql::CALL, &[Int(call)])
                    .await?
                    .ok_or(StoreError::UnknownCall(call))?;
                if old.as_deref() != Some(language) {
                    tx.execute(sql::SET_LANGUAGE, &[Int(call), Text(language)])
                        .await?;
                    let moves = old.as_deref().map(|l| (l, -1_i64)).into_iter();
                    for (lang, delta) in moves.chain([(language, 1_i64)]) {
                        tx.execute(
                            sql::COUNT_LANGUAGE,
                            &[
                                Text(&campaign),
                                Int(broadcast.unwrap_or(NO_BROADCAST)),
                                Text(lang),
                                Int(delta),
                            ],
                        )
                        .await?;
                    }
                }
            }
            WriteOp::Answer {
                call,
                question,
                choice,
                digit,
                at,
                broadcast,
            } => {
                let (call, question, choice) = (*call, question.as_str(), choice.as_str());
                let answered_at = millis(*at);
                let broadcast = broadcast.map(millis);
                tx.lock_call(call).await?;
                let (campaign, previous_choice, previous_broadcast): (
                    String,
                    Option<String>,
                    Option<i64>,
                ) = tx
                    .row(sql::CALL_AND_ANSWER, &[Int(call), Text(question)])
                    .await?
                    .ok_or(StoreError::UnknownCall(call))?;
                let previous = previous_choice.map(|choice| (choice, previous_broadcast));

                // (choice, broadcast key, delta) for every count this answer changes.
                let mut changes: Vec<(String, i64, i64)> = Vec::with_capacity(2);
                match previous {
                    Some((c, b)) if c == choice && b == broadcast => {}
                    Some((c, b)) => {
                        changes.push((c, b.unwrap_or(NO_BROADCAST), -1));
                        changes.push((choice.to_owned(), broadcast.unwrap_or(NO_BROADCAST), 1));
                    }
                    None => {
                        changes.push((choice.to_owned(), broadcast.unwrap_or(NO_BROADCAST), 1));
                    }
                }

                // Every writer touches counter rows in one global order (by choice),
                // so two calls replacing answers in opposite directions (yes -> no,
                // no -> yes) cannot deadlock on PostgreSQL.
                changes.sort();

                tx.execute(
                    sql::SAVE_ANSWER,
                    &[
                        Int(call),
                        Text(&campaign),
                        Text(question),
                        Text(choice),
                        Text(digit),
                        Int(answered_at),
                        MaybeInt(broadcast),
                    ],
                )
                .await?;

                // The pair counts pair this question with the call's *other* answers, so
                // it does not matter that the answer row was replaced first.
                for (c, key, delta) in &changes {
                    tx.execute(
                        sql::COUNT_CHOICE,
                        &[
                            Text(&campaign),
                            Int(*key),
                            Text(question),
                            Text(c),
                            Int(*delta),
                        ],
                    )
                    .await?;
                    tx.execute(
                        sql::COUNT_PAIRS,
                        &[Int(call), Int(*key), Text(question), Text(c), Int(*delta)],
                    )
                    .await?;
                }
            }
            WriteOp::Completed { call } => {
                let call = *call;
                let first: Option<(String, Option<i64>)> =
                    tx.row(sql::COMPLETE_CALL, &[Int(call)]).await?;
                match first {
                    Some((campaign, broadcast)) => {
                        count_call(tx, &campaign, broadcast, 0, 1).await?;
                    }
                    None => known_call(tx, call).await?,
                }
            }
            WriteOp::End {
                call,
                at,
                outcome,
                last_node,
            } => {
                let call = *call;
                let ended_at = millis(*at);
                let after = hung_up_at(outcome, last_node.as_deref());
                tx.lock_call(call).await?;
                let (was, was_at): (Option<String>, Option<String>) = tx
                    .row(sql::CALL_END, &[Int(call)])
                    .await?
                    .ok_or(StoreError::UnknownCall(call))?;
                let before = was
                    .as_deref()
                    .and_then(|o| hung_up_at(o, was_at.as_deref()));
                tx.execute(
                    sql::END_CALL,
                    &[
                        Int(call),
                        Int(ended_at),
                        Text(outcome),
                        MaybeText(last_node.as_deref()),
                    ],
                )
                .await?;
                if before != after {
                    // In one global order (by node), as the answers' counters.
                    let mut changes: Vec<(&str, i64)> = before
                        .map(|n| (n, -1))
                        .into_iter()
                        .chain(after.map(|n| (n, 1)))
                        .collect();
                    changes.sort();
                    for (node, delta) in changes {
                        tx.execute(
                            sql::COUNT_NODE,
                            &[Int(call), Text(node), Int(0), Int(delta)],
                        )
                        .await?;
                    }
                }
            }
            WriteOp::Withdraw { call } => {
                let gone: Option<(String, Option<i64>)> =
                    tx.row(sql::WITHDRAW_CALL, &[Int(*call)]).await?;
                // Applied again, the call is already gone: nothing to take back.
                if let Some((campaign, broadcast)) = gone {
                    count_call(tx, &campaign, broadcast, -1, 0).await?;
                }
            }
            // Never passed (see `WriteOp::batches`).
            WriteOp::Recording { .. } | WriteOp::Subscribe { .. } | WriteOp::Unsubscribe { .. } => {
            }
        }
    }
    Ok(())
}
