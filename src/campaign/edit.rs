//! Changing a campaign file from the web app: every change is a change to the
//! TOML file a broadcaster could have made by hand.
//!
//! The file is edited with `toml_edit`, which keeps every comment, blank line and
//! the order of keys that the change does not touch, so a station that keeps its
//! campaigns in git sees an ordinary diff of the lines that changed. A changed
//! value keeps the comment written after it. The result is checked by the same
//! loader as `kuma check` ([`super::load_campaign_text`]) before anything is
//! written, and written atomically ([`write_atomic`]): a reader (a SIGHUP reload,
//! `kuma check`, git) sees the old file or the new one, never half of each.
//!
//! The schedule editor speaks in weekly slots and one-off dates
//! ([`ScheduleEdit`]), never cron syntax; [`slot_of`] reads a cron expression of
//! the file back as a slot when it is one, so a schedule makes the round trip.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// The body of `PUT /api/campaigns/{id}/schedule` (and the reply of its GET).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEdit {
    /// IANA zone, e.g. `Africa/Bamako`.
    pub timezone: String,
    /// When the programme airs.
    #[serde(default)]
    pub broadcasts: Vec<Slot>,
    /// `90m`, `48h`, `2d`; `null`: the poll is open whenever the campaign runs.
    #[serde(default)]
    pub poll_window: Option<String>,
    /// First day, `YYYY-MM-DD`, or `null`.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`, or `null`.
    #[serde(default)]
    pub until: Option<String>,
}

/// One broadcast: every week on some days, once on a date, or (for schedules
/// written by hand that are neither) the file's cron expression as it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Weekdays: `mon` … `sun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// A single day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// `HH:MM`, in the schedule's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// A cron expression kept as written (not offered by the page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// A change that cannot be made: which field, and why (the words of `kuma
/// check` where the loader found it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

const DAYS: &[(&str, &str, &str)] = &[
    ("mon", "monday", "Mon"),
    ("tue", "tuesday", "Tue"),
    ("wed", "wednesday", "Wed"),
    ("thu", "thursday", "Thu"),
    ("fri", "friday", "Fri"),
    ("sat", "saturday", "Sat"),
    ("sun", "sunday", "Sun"),
];

/// `HH:MM` as (hour, minute).
fn parse_clock(text: &str) -> Option<(u32, u32)> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.trim().len() <= 5).then_some((h, m))
}

/// The cron expression (seconds field first, as the file wants) of a slot.
pub fn cron_of(slot: &Slot, field: &str) -> Result<String, FieldError> {
    let clock = |slot: &Slot| -> Result<(u32, u32), FieldError> {
        let t = slot.time.as_deref().ok_or_else(|| {
            field_error(
                format!("{field}.time"),
                "missing; expected HH:MM, e.g. \"19:00\"",
            )
        })?;
        parse_clock(t).ok_or_else(|| {
            field_error(
                format!("{field}.time"),
                format!("`{t}` is not a time; expected HH:MM, e.g. \"19:00\""),
            )
        })
    };
    match (&slot.days, &slot.date, &slot.cron) {
        (Some(days), None, None) => {
            let (h, m) = clock(slot)?;
            if days.is_empty() {
                return Err(field_error(
                    format!("{field}.days"),
                    "no day; list at least one of mon, tue, wed, thu, fri, sat, sun",
                ));
            }
            let mut names: Vec<&str> = Vec::new();
            for (i, d) in days.iter().enumerate() {
                let lower = d.trim().to_ascii_lowercase();
                let name = DAYS
                    .iter()
                    .find(|(short, long, _)| lower == *short || lower == *long)
                    .map(|(_, _, cron)| *cron)
                    .ok_or_else(|| {
                        field_error(
                            format!("{field}.days[{i}]"),
                            format!(
                                "`{d}` is not a day; expected one of mon, tue, wed, thu, fri, sat, sun"
                            ),
                        )
                    })?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Ok(format!("0 {m} {h} * * {}", names.join(",")))
        }
        (None, Some(date), None) => {
            let (h, m) = clock(slot)?;
            let day = crate::schedule::parse_day(date)
                .and_then(super::limits::plausible_day)
                .map_err(|e| field_error(format!("{field}.date"), e))?;
            use chrono::Datelike;
            Ok(format!(
                "0 {m} {h} {} {} * {}",
                day.day(),
                day.month(),
                day.year()
            ))
        }
        (None, None, Some(cron)) if slot.time.is_none() => Ok(cron.trim().to_string()),
        _ => Err(field_error(
            field,
            "give either `days` and `time` (every week) or `date` and `time` (once)",
        )),
    }
}

/// A cron expression of the file as a slot: weekly and one-off broadcasts at a
/// whole minute read as days or a date; anything else stays cron.
pub fn slot_of(expr: &str) -> Slot {
    let f: Vec<&str> = expr.split_whitespace().collect();
    let clock = |m: &str, h: &str| -> Option<String> {
        let (m, h): (u32, u32) = (m.parse().ok()?, h.parse().ok()?);
        (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
    };
    let weekly = || -> Option<Slot> {
        let [sec, m, h, "*", "*", dow] = f.as_slice() else {
            return None;
        };
        if *sec != "0" {
            return None;
        }
        let days = dow
            .split(',')
            .map(|d| {
                let lower = d.to_ascii_lowercase();
                DAYS.iter()
                    .find(|(short, long, _)| lower == *short || lower == *long)
                    .map(|(short, _, _)| short.to_string())
            })
            .collect::<Option<Vec<String>>>()?;
        Some(Slot {
            days: Some(days),
            date: None,
            time: Some(clock(m, h)?),
            cron: None,
        })
    };
    let once = || -> Option<Slot> {
        let [sec, m, h, d, mo, dow, y] = f.as_slice() else {
            return None;
        };
        if *sec != "0" || !matches!(*dow, "*" | "?") {
            return None;
        }
        let date =
            chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, d.parse().ok()?)?;
        Some(Slot {
            days: None,
            date: Some(date.format("%Y-%m-%d").to_string()),
            time: Some(clock(m, h)?),
            cron: None,
        })
    };
    weekly().or_else(once).unwrap_or_else(|| Slot {
        days: None,
        date: None,
        time: None,
        cron: Some(expr.to_string()),
    })
}

/// The schedule of a campaign as the editor shows it; `None` without `[schedule]`.
pub fn schedule_edit_of(s: &crate::schedule::Schedule) -> ScheduleEdit {
    ScheduleEdit {
        timezone: s.timezone.name().to_string(),
        broadcasts: s.broadcasts.iter().map(|b| slot_of(&b.expr)).collect(),
        poll_window: s.poll_window.map(super::format_duration),
        from: s.from.map(|d| d.format("%Y-%m-%d").to_string()),
        until: s.until.map(|d| d.format("%Y-%m-%d").to_string()),
    }
}

/// Replaces `key`'s value, keeping the comment after the old one; unchanged
/// values are left alone (so their formatting stays byte for byte).
pub fn set(t: &mut dyn toml_edit::TableLike, key: &str, new: Value) {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            if old.to_string().trim() == new.to_string().trim() {
                return;
            }
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        _ => {
            t.insert(key, Item::Value(new));
        }
    }
}

fn set_or_remove(t: &mut dyn toml_edit::TableLike, key: &str, new: Option<&str>) {
    match new.map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) => set(t, key, Value::from(v)),
        None => {
            t.remove(key);
        }
    }
}

/// The broadcasts as an array: one per line when there are several, as a
/// broadcaster would write them.
fn broadcasts_array(crons: &[String]) -> Array {
    let mut a: Array = crons.iter().map(String::as_str).collect();
    if crons.len() > 1 {
        for v in a.iter_mut() {
            v.decor_mut().set_prefix("\n    ");
        }
        a.set_trailing("\n");
        a.set_trailing_comma(true);
    }
    a
}

/// The campaign text with its `[schedule]` set to `edit` (keeping `closed` and
/// everything else of the file). Slot mistakes are found here; what the loader
/// checks (time zone, durations, dates) is left to it.
pub fn set_schedule(text: &str, edit: &ScheduleEdit) -> Result<String, FieldError> {
    let crons = edit
        .broadcasts
        .iter()
        .enumerate()
        .map(|(i, s)| cron_of(s, &format!("broadcasts[{i}]")))
        .collect::<Result<Vec<String>, FieldError>>()?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| field_error("source", e.message().to_string()))?;
    if doc
        .get("schedule")
        .is_none_or(|s| s.as_table_like().is_none())
    {
        // Before the nodes, where a broadcaster would put it: the tables from
        // the first node on move one place down.
        let first_node = doc
            .get("node")
            .and_then(Item::as_array_of_tables)
            .and_then(|a| a.iter().filter_map(Table::position).min());
        if let Some(first) = first_node {
            for (_, item) in doc.iter_mut() {
                let tables: Vec<&mut Table> = match item {
                    Item::Table(t) => vec![t],
                    Item::ArrayOfTables(a) => a.iter_mut().collect(),
                    _ => vec![],
                };
                for t in tables {
                    if let Some(p) = t.position().filter(|p| *p >= first) {
                        t.set_position(p.checked_add(1));
                    }
                }
            }
        }
        let mut t = Table::new();
        t.set_position(first_node);
        doc.insert("schedule", Item::Table(t));
    }
    let Some(t) = doc.get_mut("schedule").and_then(Item::as_table_like_mut) else {
        return Err(field_error("schedule", "`schedule` is not a table"));
    };
    set(t, "timezone", Value::from(edit.timezone.trim()));
    if crons.is_empty() {
        t.remove("broadcasts");
    } else {
        let unchanged = t
            .get("broadcasts")
            .and_then(Item::as_array)
            .is_some_and(|a| {
                a.iter().map(|v| v.as_str()).collect::<Vec<_>>()
                    == crons.iter().map(|c| Some(c.as_str())).collect::<Vec<_>>()
            });
        if !unchanged {
            // In place: the comment above the key stays with it.
            set(t, "broadcasts", Value::Array(broadcasts_array(&crons)));
        }
    }
    // `48h` and `2d` are the same window: the file keeps the broadcaster's words.
    let same_window = |old: Option<&str>| {
        let parse = |s: Option<&str>| s.and_then(|s| super::parse_duration(s.trim()).ok());
        parse(old).is_some() && parse(old) == parse(edit.poll_window.as_deref())
    };
    if !same_window(t.get("poll_window").and_then(Item::as_str)) {
        set_or_remove(t, "poll_window", edit.poll_window.as_deref());
    }
    set_or_remove(t, "from", edit.from.as_deref());
    set_or_remove(t, "until", edit.until.as_deref());
    Ok(doc.to_string())
}

/// Which field of the schedule editor a loader message about line `line` of
/// `text` points at: `broadcasts[N]` for an entry of the list, else the key.
pub fn schedule_field_at(text: &str, line: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let line_of = |offset: usize| {
        text.as_bytes()
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() + 1)
    };
    let DeValue::Table(t) = doc.get_ref().get("schedule")?.get_ref() else {
        return None;
    };
    for (key, v) in t.iter() {
        if let DeValue::Array(items) = v.get_ref() {
            for (i, item) in items.iter().enumerate() {
                if line_of(item.span().start) == line {
                    return Some(format!("{}[{i}]", key.get_ref()));
                }
            }
        }
        let (first, last) = (line_of(key.span().start), line_of(v.span().end));
        if first <= line && line <= last {
            return Some(key.get_ref().to_string());
        }
    }
    None
}

/// A version's tag: the SHA-256 of the file's bytes (hex, 32 digits), sent as
/// the ETag and compared with If-Match.
pub fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(digest.get(..16).unwrap_or_default())
}

/// Writes `bytes` to `path` so that readers see the old file or the new one:
/// written beside it (same folder, so the rename cannot cross file systems),
/// flushed to disk, renamed over it, and the folder flushed so the rename
/// survives a power cut. The file keeps the old one's permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    // Not `*.toml`: a reload that lists the folder meanwhile skips it.
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random)));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# The campaign of the week.
title = "Test"
languages = ["fr"]
audio = "audio"

[schedule]
timezone = "Africa/Bamako" # where the station is
# Tuesday evening.
broadcasts = ["0 0 19 * * Tue"]
poll_window = "48h"
closed = "closed"

# The voice menu.
[[node]]
id = "welcome" # first
kind = "hangup"
prompt = "goodbye"
"#;

    fn edit(broadcasts: Vec<Slot>) -> ScheduleEdit {
        ScheduleEdit {
            timezone: "Africa/Bamako".into(),
            broadcasts,
            poll_window: Some("48h".into()),
            from: None,
            until: None,
        }
    }

    fn weekly(days: &[&str], time: &str) -> Slot {
        Slot {
            days: Some(days.iter().map(|d| d.to_string()).collect()),
            date: None,
            time: Some(time.into()),
            cron: None,
        }
    }

    #[test]
    fn slots_become_cron_and_back() {
        let w = weekly(&["tue", "Friday"], "19:05");
        assert_eq!(cron_of(&w, "b").unwrap(), "0 5 19 * * Tue,Fri");
        assert_eq!(
            slot_of("0 5 19 * * Tue,Fri"),
            weekly(&["tue", "fri"], "19:05")
        );
        let once = Slot {
            days: None,
            date: Some("2026-12-24".into()),
            time: Some("20:00".into()),
            cron: None,
        };
        assert_eq!(cron_of(&once, "b").unwrap(), "0 0 20 24 12 * 2026");
        assert_eq!(slot_of("0 0 20 24 12 * 2026"), once);
        assert_eq!(
            slot_of("0 0/30 19 * * Tue").cron.as_deref(),
            Some("0 0/30 19 * * Tue")
        );
        let bad = cron_of(&weekly(&["tue"], "25:00"), "broadcasts[0]").unwrap_err();
        assert_eq!(bad.field, "broadcasts[0].time");
        let bad = cron_of(&weekly(&["tues"], "19:00"), "broadcasts[1]").unwrap_err();
        assert_eq!(bad.field, "broadcasts[1].days[0]");
        let both = Slot {
            date: Some("2026-12-24".into()),
            ..weekly(&["tue"], "19:00")
        };
        assert!(cron_of(&both, "b").is_err());
        // Every generated expression parses as the loader parses it.
        for c in ["0 5 19 * * Tue,Fri", "0 0 20 24 12 * 2026"] {
            crate::schedule::Broadcast::parse(c).unwrap();
        }
    }

    #[test]
    fn a_schedule_change_keeps_comments_and_other_lines() {
        let out = set_schedule(
            FILE,
            &edit(vec![
                weekly(&["wed"], "19:00"),
                Slot {
                    days: None,
                    date: Some("2026-12-24".into()),
                    time: Some("20:00".into()),
                    cron: None,
                },
            ]),
        )
        .unwrap();
        let expected = FILE.replace(
            "broadcasts = [\"0 0 19 * * Tue\"]",
            "broadcasts = [\n    \"0 0 19 * * Wed\",\n    \"0 0 20 24 12 * 2026\",\n]",
        );
        assert_eq!(out, expected);
        // Nothing changed: the text is the same, byte for byte.
        let same = edit(vec![weekly(&["tue"], "19:00")]);
        assert_eq!(set_schedule(FILE, &same).unwrap(), FILE);
        // A changed value keeps its comment; a null removes the key.
        let mut two_days = same.clone();
        two_days.poll_window = Some("2d".into());
        assert_eq!(set_schedule(FILE, &two_days).unwrap(), FILE);
        let mut e = same.clone();
        e.timezone = "Africa/Dakar".into();
        e.poll_window = None;
        let out = set_schedule(FILE, &e).unwrap();
        assert!(out.contains("timezone = \"Africa/Dakar\" # where the station is\n"));
        assert!(!out.contains("poll_window"));
        assert!(out.contains("closed = \"closed\""));
    }

    #[test]
    fn a_file_without_schedule_gets_one_before_the_nodes() {
        let start = FILE.find("[schedule]").unwrap();
        let end = FILE.find("# The voice menu.").unwrap();
        let plain = format!("{}{}", &FILE[..start], &FILE[end..]);
        let out = set_schedule(&plain, &edit(vec![weekly(&["tue"], "19:00")])).unwrap();
        let s = out.find("[schedule]").unwrap();
        let n = out.find("[[node]]").unwrap();
        assert!(s < n, "{out}");
        assert!(out.contains("broadcasts = [\"0 0 19 * * Tue\"]"), "{out}");
        assert!(out.contains("id = \"welcome\" # first"));
    }

    #[test]
    fn loader_lines_point_at_the_schedule_field() {
        let text = FILE.replace(
            "broadcasts = [\"0 0 19 * * Tue\"]",
            "broadcasts = [\n    \"0 0 19 * * Wed\",\n    \"bad\",\n]",
        );
        let line = |needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;
        assert_eq!(
            schedule_field_at(&text, line("\"bad\"")).as_deref(),
            Some("broadcasts[1]")
        );
        assert_eq!(
            schedule_field_at(&text, line("timezone")).as_deref(),
            Some("timezone")
        );
        assert_eq!(
            schedule_field_at(&text, line("poll_window")).as_deref(),
            Some("poll_window")
        );
        assert_eq!(schedule_field_at(&text, 1), None);
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_nothing_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(etag(b"new").len(), 32);
        assert_ne!(etag(b"new"), etag(b"old"));
    }
}
