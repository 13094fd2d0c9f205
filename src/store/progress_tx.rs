//! The transaction a call's progress is written in, whichever the backend: the
//! three things those writes do (run a statement, read one row, lock the
//! call's row) behind one trait, [`ProgressTx`], so that what they do
//! (`writes.rs`, `Store::apply_here`) is written once.
//!
//! On PostgreSQL it is an sqlx transaction. On SQLite it is a rusqlite
//! transaction on the writer thread itself (`direct.rs`): every method runs
//! its statement to the end before it returns and never waits, so the writes
//! made of them finish in one poll (`direct::now`).

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Transaction};

use super::{CallRow, StoreError, sql};

/// A value bound to a statement's `$N` (the N-th of the slice).
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Bool(bool),
}

/// A row the writes read, decoded alike from either backend (a tuple of
/// columns; one column is a 1-tuple).
pub(super) trait Columns: Sized + Send + Unpin + for<'r> sqlx::FromRow<'r, PgRow> {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl<A> Columns for (A,)
where
    A: rusqlite::types::FromSql + Send + Unpin,
    A: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

impl<A, B> Columns for (A, B)
where
    A: rusqlite::types::FromSql + Send + Unpin,
    A: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    B: rusqlite::types::FromSql + Send + Unpin,
    B: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?))
    }
}

impl<A, B, C> Columns for (A, B, C)
where
    A: rusqlite::types::FromSql + Send + Unpin,
    A: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    B: rusqlite::types::FromSql + Send + Unpin,
    B: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    C: rusqlite::types::FromSql + Send + Unpin,
    C: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

/// A write transaction as the calls' progress uses it.
pub(super) trait ProgressTx {
    /// Runs `sql` with `args`; the number of rows it changed.
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    /// Runs `sql` with `args`; its first row, if any.
    async fn row<R: Columns>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<R>, StoreError>;

    /// Holds the call's row until the transaction ends, so that writes to one
    /// call never interleave.
    async fn lock_call(&mut self, call: CallRow) -> Result<(), StoreError>;
}

fn bind_pg<'q>(
    mut query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for arg in args {
        query = match *arg {
            Arg::Int(v) => query.bind(v),
            Arg::MaybeInt(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::MaybeText(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        };
    }
    query
}

impl ProgressTx for Transaction<'_, Postgres> {
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let done = bind_pg(sqlx::query(sql), args).execute(&mut **self).await?;
        Ok(done.rows_affected())
    }

    async fn row<R: Columns>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<R>, StoreError> {
        let row = bind_pg(sqlx::query(sql), args)
            .fetch_optional(&mut **self)
            .await?;
        Ok(row
            .map(|row| <R as sqlx::FromRow<'_, PgRow>>::from_row(&row))
            .transpose()?)
    }

    async fn lock_call(&mut self, call: CallRow) -> Result<(), StoreError> {
        self.execute(sql::LOCK_CALL_POSTGRES, &[Arg::Int(call)])
            .await
            .map(|_| ())
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::MaybeInt(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
            Arg::MaybeText(v) => v.to_sql(),
            Arg::Bool(v) => v.to_sql(),
        }
    }
}

/// The names of the `$N` placeholders, as SQLite knows them: it numbers
/// parameters in the order they first appear, not by their N.
const PLACEHOLDERS: [&str; 9] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9"];

/// `sql` from the statement cache, with `args` bound to its `$N`.
fn prepare<'c>(
    tx: &'c rusqlite::Transaction<'_>,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut statement = tx.prepare_cached(sql)?;
    if args.len() > PLACEHOLDERS.len() {
        return Err(StoreError::BadValue(format!(
            "a statement with {} parameters",
            args.len()
        )));
    }
    for (name, arg) in PLACEHOLDERS.iter().zip(args) {
        statement.raw_bind_parameter(*name, arg)?;
    }
    Ok(statement)
}

impl ProgressTx for rusqlite::Transaction<'_> {
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut statement = prepare(self, sql, args)?;
        let changed = statement.raw_execute()?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    async fn row<R: Columns>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<R>, StoreError> {
        let mut statement = prepare(self, sql, args)?;
        let mut rows = statement.raw_query();
        let row = match rows.next()? {
            Some(row) => Some(R::from_sqlite(row)?),
            None => None,
        };
        // (A statement with `RETURNING` made all its changes in its first step.)
        Ok(row)
    }

    async fn lock_call(&mut self, _call: CallRow) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` already holds the whole database.
        Ok(())
    }
}
