//! Reading results: counts (from the counter tables, or from raw rows when a time
//! range is asked for), the list of broadcasts, calls per hour (for the hours
//! around a broadcast), and the streamed answer export.

use sqlx::query::QueryAs;
use sqlx::{Database, Encode, Type};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{
    AnswerRow, BroadcastSummary, ChoiceCount, CountFilter, Counts, PairCount, Store, StoreError,
    count, millis, sql, time, with_pool,
};

/// The four statements behind [`Store::counts`], for one way of counting.
struct CountQueries {
    calls: &'static str,
    languages: &'static str,
    choices: &'static str,
    pairs: &'static str,
}

/// Whole-campaign or per-broadcast counts: read from the counter tables.
const FROM_COUNTERS: CountQueries = CountQueries {
    calls: sql::COUNTED_CALLS,
    languages: sql::COUNTED_LANGUAGES,
    choices: sql::COUNTED_CHOICES,
    pairs: sql::COUNTED_PAIRS,
};

/// Counts in a time range: counted from the rows in that range.
const FROM_RANGE: CountQueries = CountQueries {
    calls: sql::RANGE_CALLS,
    languages: sql::RANGE_LANGUAGES,
    choices: sql::RANGE_CHOICES,
    pairs: sql::RANGE_PAIRS,
};

/// A filter in the form the statements take it: `$1` campaign, `$2` broadcast
/// (NULL: all), then for range statements `$3` since and `$4` until.
#[derive(Clone, Copy)]
pub(super) struct Bound<'a> {
    campaign: &'a str,
    broadcast: Option<i64>,
    pub(super) range: Option<(i64, i64)>,
}

impl<'a> Bound<'a> {
    pub(super) fn new(campaign: &'a str, f: &CountFilter<'_>) -> Self {
        let range = (f.since.is_some() || f.until.is_some()).then(|| {
            (
                f.since.map_or(i64::MIN, millis),
                f.until.map_or(i64::MAX, millis),
            )
        });
        Bound {
            campaign,
            broadcast: f.broadcast.map(millis),
            range,
        }
    }

    /// For the export, which always takes a range (everything when none is given).
    pub(super) fn with_range(self) -> Self {
        Bound {
            range: Some(self.range.unwrap_or((i64::MIN, i64::MAX))),
            ..self
        }
    }

    pub(super) fn bind<'q, DB, O>(
        self,
        query: QueryAs<'q, DB, O, DB::Arguments>,
    ) -> QueryAs<'q, DB, O, DB::Arguments>
    where
        'a: 'q,
        DB: Database,
        for<'s> &'s str: Encode<'s, DB> + Type<DB>,
        for<'s> i64: Encode<'s, DB> + Type<DB>,
        for<'s> Option<i64>: Encode<'s, DB> + Type<DB>,
    {
        let query = query.bind(self.campaign).bind(self.broadcast);
        match self.range {
            Some((since, until)) => query.bind(since).bind(until),
            None => query,
        }
    }
}

impl Store {
    /// Counts calls, completed calls, languages, answers and (with `f.by`) the
    /// cross-tab for one campaign. Without `since`/`until` this reads only the
    /// counter tables; with them, the rows in the range.
    pub async fn counts(&self, campaign: &str, f: &CountFilter<'_>) -> Result<Counts, StoreError> {
        let bound = Bound::new(campaign, f);
        let q = if bound.range.is_some() {
            &FROM_RANGE
        } else {
            &FROM_COUNTERS
        };
        let (totals, languages, choices, pairs) = with_pool!(self, |pool| {
            let totals: (i64, i64) = bound.bind(sqlx::query_as(q.calls)).fetch_one(pool).await?;
            let languages: Vec<(String, i64)> = bound
                .bind(sqlx::query_as(q.languages))
                .fetch_all(pool)
                .await?;
            let choices: Vec<(String, String, i64)> = bound
                .bind(sqlx::query_as(q.choices))
                .fetch_all(pool)
                .await?;
            let pairs: Vec<(String, String, String, i64)> = match f.by {
                Some(by) => {
                    bound
                        .bind(sqlx::query_as(q.pairs))
                        .bind(by)
                        .fetch_all(pool)
                        .await?
                }
                None => Vec::new(),
            };
            (totals, languages, choices, pairs)
        });
        Ok(Counts {
            calls: count(totals.0),
            completed: count(totals.1),
            languages: languages
                .into_iter()
                .map(|(language, n)| (language, count(n)))
                .collect(),
            answers: choices
                .into_iter()
                .map(|(question, choice, n)| ChoiceCount {
                    question,
                    choice,
                    count: count(n),
                })
                .collect(),
            by: pairs
                .into_iter()
                .map(|(question, choice, by_choice, n)| PairCount {
                    question,
                    choice,
                    by_choice,
                    count: count(n),
                })
                .collect(),
        })
    }

    /// Every broadcast of the campaign that has calls or answers, oldest first.
    pub async fn broadcasts(&self, campaign: &str) -> Result<Vec<BroadcastSummary>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(sql::BROADCASTS)
                .bind(campaign)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(at, calls, answers)| {
                Ok(BroadcastSummary {
                    at: time(at)?,
                    calls: count(calls),
                    answers: count(answers),
                })
            })
            .collect()
    }

    /// Calls started per hour in `[since, until)`, oldest first, as (the hour's
    /// start, calls); hours without calls are left out. Reads the calls through
    /// their (campaign, started_at) index, so the cost follows the range.
    pub async fn calls_per_hour(
        &self,
        campaign: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(sql::CALLS_PER_HOUR)
                .bind(campaign)
                .bind(millis(since))
                .bind(millis(until))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(hour, n)| Ok((time(hour)?, count(n))))
            .collect()
    }

    /// The caller's pseudonym of a call (`None`: no such call).
    pub async fn call_caller(&self, call: super::CallRow) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT caller FROM calls WHERE id = $1")
                .bind(call)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(caller,)| caller))
    }

    /// How a call ended (`None` while it is in progress or unknown).
    pub async fn call_outcome(&self, call: super::CallRow) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT outcome FROM calls WHERE id = $1")
                .bind(call)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(outcome,)| outcome))
    }

    /// Calls `each` with every answer that passes the filter (`by` is ignored), in
    /// the order they were given. Rows are streamed from the database, so an
    /// export of millions of answers holds one at a time. An error from `each`
    /// stops the export and is returned.
    pub async fn for_each_answer(
        &self,
        campaign: &str,
        f: &CountFilter<'_>,
        mut each: impl FnMut(AnswerRow) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let bound = Bound::new(campaign, f).with_range();
        with_pool!(self, |pool| {
            let mut rows = bound
                .bind(sqlx::query_as::<_, ExportRow>(sql::EXPORT_ANSWERS))
                .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                each(answer_row(row)?)?;
            }
        });
        Ok(())
    }
}

/// Answer rows as a stream, for a consumer that must await between rows (the
/// HTTP export, which waits for a slow client instead of holding the rows).
pub type AnswerStream<'a> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<AnswerRow, StoreError>> + Send + 'a>>;

impl Store {
    /// The rows of [`Store::for_each_answer`], as a stream (`by` is ignored).
    pub fn answers<'a>(&'a self, campaign: &'a str, f: &CountFilter<'_>) -> AnswerStream<'a> {
        let bound = Bound::new(campaign, f).with_range();
        with_pool!(self, |pool| {
            let rows = bound
                .bind(sqlx::query_as::<_, ExportRow>(sql::EXPORT_ANSWERS))
                .fetch(pool)
                .map_err(StoreError::from)
                .and_then(|row| std::future::ready(answer_row(row)));
            Box::pin(rows) as AnswerStream<'a>
        })
    }
}

/// call, caller, language, question, choice, digit, answered_at, broadcast
type ExportRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

fn answer_row(row: ExportRow) -> Result<AnswerRow, StoreError> {
    let (call, caller, language, question, choice, digit, answered_at, broadcast) = row;
    Ok(AnswerRow {
        call,
        caller,
        language,
        question,
        choice,
        digit,
        answered_at: time(answered_at)?,
        broadcast: broadcast.map(time).transpose()?,
    })
}
