//! Opening a store: from a URL to connected pools with up-to-date tables, and from
//! whatever went wrong on the way to one line that names the (redacted) URL.
//!
//! Each backend is first reached with a single connection: it reports the real
//! cause at once (a pool would retry a refused connection until its timeout and
//! then only say "timed out"). Then the pool is built and the migrations run on it.
//! (Through the pool rather than that connection: `Migrator::run` on a
//! `&mut Connection` makes `Store::open`'s future fail rustc's `Send` check —
//! "implementation of `Send` is not general enough" — and a store must be openable
//! inside a spawned task.)

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use super::{Backend, SqliteBackend, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a writer waits for another process's write lock on SQLite.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The bytes of the write-ahead log kept when it starts over after a
/// checkpoint (`journal_size_limit`): none, so the frames written before,
/// which hold what was since erased, go with it.
pub(super) const SQLITE_WAL_KEPT: i64 = 0;
/// How long to wait for a PostgreSQL server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One writer at a time anyway; the others serve concurrent reads and exports.
const SQLITE_POOL_SIZE: u32 = 4;
/// Connections for reads and for writes beyond those kept warm (`pg_conn.rs`).
const POSTGRES_POOL_SIZE: u32 = 10;

/// Opens the database `url` names; a SQLite file that does not exist is made
/// if `create`, else it is [`StoreError::Missing`] (a PostgreSQL database is
/// never made: its server has it or refuses the connection).
pub(super) async fn open(url: &str, create: bool) -> Result<Backend, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::unsupported(url));
        }
        let path = Path::new(path);
        if !create && !path.exists() {
            return Err(StoreError::Missing {
                url: redact_url(url),
            });
        }
        open_sqlite(url, path, create).await
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        open_postgres(url).await
    } else {
        Err(StoreError::unsupported(url))
    }
}

async fn open_sqlite(url: &str, path: &Path, create: bool) -> Result<Backend, StoreError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateFolder {
            url: redact_url(url),
            folder: folder.to_path_buf(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        // What is deleted or overwritten (a sealed number erased once its
        // call-back is over or its listener unsubscribed) is overwritten with
        // zeros, not left in the file's free space, where a copy of the disk
        // gave erased numbers back. And the write-ahead log, whose older
        // frames still hold it, is cut back each time it starts over.
        .pragma("secure_delete", "ON")
        .pragma("journal_size_limit", SQLITE_WAL_KEPT.to_string());

    let first: SqliteConnection = options.connect().await.map_err(|e| open_error(url, &e))?;
    // Best effort: it has done its job.
    let _ = first.close().await;
    // SQLite quietly opens a file it may not write read-only, and every answer
    // would fail later: say so now.
    if let Err(e) = std::fs::OpenOptions::new().append(true).open(path) {
        return Err(StoreError::Open {
            url: redact_url(url),
            reason: format!("the file cannot be written: {e}"),
        });
    }

    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_POOL_SIZE)
        .connect_lazy_with(options.clone());
    SQLITE_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| migrate_error(url, &e))?;
    // Writes on a connection of their own (its page cache stays warm, `group.rs`).
    let writes = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    Ok(Backend::Sqlite(SqliteBackend {
        pool,
        writer: std::sync::Arc::new(super::group::Writer::new(writes)),
        direct: super::direct::Direct::new(path.to_path_buf()),
    }))
}

async fn open_postgres(url: &str) -> Result<Backend, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| open_error(url, &e))?
        .application_name("kuma");

    let first: PgConnection = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| StoreError::Open {
            url: redact_url(url),
            reason: format!(
                "no answer from the server within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        })?
        .map_err(|e| open_error(url, &e))?;
    // Best effort: it has done its job.
    let _ = first.close().await;

    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_POOL_SIZE + super::pg_conn::KEPT as u32)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options);
    POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| migrate_error(url, &e))?;
    Ok(Backend::Postgres(super::pg_conn::PgBackend::new(pool)))
}

/// Turns a connection error into one line an operator can act on.
fn open_error(url: &str, e: &sqlx::Error) -> StoreError {
    let reason = match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is the server running, and are the host and port right?)"
                    .to_string()
            }
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: invalid_password, invalid_authorization_specification.
            Some("28P01") | Some("28000") => {
                format!("{} (check the user and password)", db.message())
            }
            // PostgreSQL: invalid_catalog_name.
            Some("3D000") => format!("{} (create it first)", db.message()),
            // SQLite: SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH (with extended codes).
            Some(code) if sqlite_access_problem(code) => format!(
                "{} (does the folder exist, and may this user write to it and to the file?)",
                db.message()
            ),
            _ => db.message().to_string(),
        },
        sqlx::Error::Configuration(c) => format!("invalid URL: {c}"),
        other => other.to_string(),
    };
    StoreError::Open {
        url: redact_url(url),
        reason: scrub(url, &reason),
    }
}

fn migrate_error(url: &str, e: &sqlx::migrate::MigrateError) -> StoreError {
    let reason = match e {
        sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))
            if db.code().as_deref().is_some_and(sqlite_access_problem) =>
        {
            format!(
                "{} (may this user write to the file and its folder?)",
                db.message()
            )
        }
        other => other.to_string(),
    };
    StoreError::Migrate {
        url: redact_url(url),
        reason: scrub(url, &reason),
    }
}

/// SQLite result codes (primary code in the low byte) that mean "cannot open or
/// write the file": CANTOPEN 14, READONLY 8, PERM 3, AUTH 23.
fn sqlite_access_problem(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 3 | 8 | 14 | 23))
}

/// Removes the URL's password from `text`, in case a driver message quoted it.
fn scrub(url: &str, text: &str) -> String {
    match url_password(url) {
        Some(password) if !password.is_empty() => text.replace(password, "***"),
        _ => text.to_string(),
    }
}

/// The password in `scheme://user:password@host…`, as written in the URL.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let head = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let at = head.rfind('@')?;
    let (_, password) = head[..at].split_once(':')?;
    Some(password)
}

/// `url` with its password (in `user:password@` or a `password=` query parameter)
/// replaced by `***`, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    let head_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (head, tail) = rest.split_at(head_end);
    let mut out = format!("{scheme}://");
    match head.rfind('@') {
        Some(at) => {
            let userinfo = &head[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&head[at..]);
        }
        None => out.push_str(head),
    }
    out.push_str(&redact_query(tail));
    out
}

/// Replaces the value of every `password=` parameter in a query string.
fn redact_query(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_string();
    };
    let (before, query) = text.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => param.to_string(),
        })
        .collect();
    format!("{before}{}{fragment}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_in_userinfo() {
        assert_eq!(
            redact_url("postgres://kuma:s3cret@db.example:5432/kuma"),
            "postgres://kuma:***@db.example:5432/kuma"
        );
        assert_eq!(
            redact_url("postgresql://kuma:p%40ss@127.0.0.1/kuma?sslmode=disable"),
            "postgresql://kuma:***@127.0.0.1/kuma?sslmode=disable"
        );
    }

    #[test]
    fn redacts_a_password_with_slashes_or_at_signs() {
        let redacted = redact_url("postgres://kuma:a/b@c@host/db");
        assert_eq!(redacted, "postgres://kuma:***@host/db");
    }

    #[test]
    fn redacts_a_password_parameter() {
        assert_eq!(
            redact_url("postgres://host/db?user=kuma&password=s3cret&sslmode=require"),
            "postgres://host/db?user=kuma&password=***&sslmode=require"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "sqlite://data/kuma.db",
            "sqlite:///var/lib/kuma/kuma.db",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "mysql://host/db",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn scrubs_the_password_from_messages() {
        let url = "postgres://kuma:hunter22@host/db";
        assert_eq!(url_password(url), Some("hunter22"));
        assert_eq!(
            scrub(url, "bad login hunter22 for kuma"),
            "bad login *** for kuma"
        );
    }

    #[test]
    fn knows_sqlite_access_codes() {
        assert!(sqlite_access_problem("14"));
        assert!(sqlite_access_problem("1032")); // SQLITE_READONLY_DBMOVED
        assert!(!sqlite_access_problem("19"));
        assert!(!sqlite_access_problem("28P01"));
    }
}
