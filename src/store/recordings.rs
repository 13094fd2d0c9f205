//! Reading the voice messages callers left: the list a broadcaster picks from, and
//! one recording's file for playback (`crate::web`); and the one thing written to
//! them afterwards, a broadcaster's note and "picked for the next programme".
//! Rows are written by [`Store::add_recording`](super::Store::add_recording) as
//! the call records.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CallRow, Store, StoreError, time, with_pool};

/// One voice message, with the call's language and pseudonymous caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    pub id: i64,
    pub call: CallRow,
    pub campaign: String,
    pub node: String,
    /// The caller's pseudonym (never a number).
    pub caller: String,
    pub language: Option<String>,
    pub duration: Duration,
    pub created_at: DateTime<Utc>,
    /// Where the WAV file is (served, never shown to API clients).
    pub file: String,
    /// A broadcaster's note or transcript ("" when none).
    pub note: String,
    /// Picked for the next programme.
    pub picked: bool,
}

/// The one SELECT both queries share, with their own WHERE (sqlx takes only
/// static SQL, so it is put together at compile time).
macro_rules! select_recordings {
    ($tail:literal) => {
        concat!(
            "SELECT r.id, r.call, r.campaign, r.node, c.caller, c.language, r.duration_ms, r.created_at, r.file, r.note, r.picked \
             FROM recordings r JOIN calls c ON c.id = r.call ",
            $tail
        )
    };
}

const LIST: &str =
    select_recordings!("WHERE r.campaign = $1 ORDER BY r.created_at DESC, r.id DESC");
const ONE: &str = select_recordings!("WHERE r.id = $1");

/// $1 id, $2 note, $3 picked, $4 note_at → id
const SET_NOTE: &str =
    "UPDATE recordings SET note = $2, picked = $3, note_at = $4 WHERE id = $1 RETURNING id";

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    String,
    bool,
);

fn info(row: Row) -> Result<RecordingInfo, StoreError> {
    let (id, call, campaign, node, caller, language, ms, created, file, note, picked) = row;
    Ok(RecordingInfo {
        id,
        call,
        campaign,
        node,
        caller,
        language,
        duration: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
        created_at: time(created)?,
        file,
        note,
        picked,
    })
}

impl Store {
    /// A campaign's voice messages, newest first.
    pub async fn recordings(&self, campaign: &str) -> Result<Vec<RecordingInfo>, StoreError> {
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(LIST).bind(campaign).fetch_all(pool).await?
        });
        rows.into_iter().map(info).collect()
    }

    /// One voice message by id.
    pub async fn recording(&self, id: i64) -> Result<Option<RecordingInfo>, StoreError> {
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(ONE).bind(id).fetch_optional(pool).await?
        });
        row.map(info).transpose()
    }

    /// Saves a broadcaster's note on a voice message and whether it is picked for
    /// the next programme (both replace what was there). False if there is no
    /// such recording.
    pub async fn set_recording_note(
        &self,
        id: i64,
        note: &str,
        picked: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = super::millis(at);
        let row: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(SET_NOTE)
                .bind(id)
                .bind(note)
                .bind(picked)
                .bind(at)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }
}
