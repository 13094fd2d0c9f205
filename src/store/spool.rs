//! Writes that outlive the database: when the database cannot take a call's write
//! (server down, connection lost, a commit that does not come back in time), the
//! write goes to a local spool instead, synced to disk before the call goes on,
//! and is applied later, in order, by one task, when the database answers again
//! (or at the next start, after a crash).
//!
//! [`SpooledStore::write`] is the only door. In normal operation it writes to the
//! database directly and the spool stays empty: the cost is a check of two atomics
//! and a timeout around the transaction (`benches/store.rs`, `spooled_answer`).
//! Once one write has failed for want of a database, every write goes to the spool
//! until it is empty again, so one call's writes reach the database in the order
//! the call made them (its row before its answers before its end), and writes of
//! different calls in the order they were spooled.
//!
//! Exactly once: the spool's checkpoint (`spool.offset`) moves after the records
//! before it were committed, so a crash in between applies them again; every
//! [`WriteOp`] leaves the store unchanged when applied again, inside its own
//! transaction (see [`WriteOp::apply`]), so nothing is counted twice.
//!
//! The file, `DATA/spool/spool.jsonl`: one record per line, `CRC32 JSON\n`, the
//! CRC-32 (8 hex digits) of the JSON. A line cut short by a crash (it was never
//! acknowledged: the sync had not returned) is dropped when the spool is opened; a
//! line whose checksum does not match is moved to `rejected.jsonl`, as is a write
//! the database refuses for a reason a retry cannot cure (an unknown call), for an
//! operator to look at, rather than blocking every write behind it. The spool is
//! bounded (records and bytes): when full, writes fail and `kuma serve` refuses
//! new calls. One process at a time owns a spool folder (an exclusive `flock`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::group::unavailable;
use super::{Store, StoreError, Unwritten, WriteOp};

/// How long a direct write may take before it is given up and spooled. A caller
/// waits this long, once, when the database goes away; the write may still commit
/// after it (then its replay changes nothing).
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the database is tried again while it is away.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Records applied between two checkpoints.
const BATCH: usize = 64;

/// Metric names (registered by `kuma serve`'s metrics recorder).
pub mod metric {
    pub const SPOOLED: &str = "kuma_spool_writes_total";
    pub const REPLAYED: &str = "kuma_spool_replayed_total";
    pub const REJECTED: &str = "kuma_spool_rejected_total";
    pub const PENDING: &str = "kuma_spool_pending";
}

/// Where the spool lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolLimits {
    pub max_records: u64,
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_records: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a write could be neither stored nor spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The database refused the write for a reason of the write's own.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the spool is full ({records} writes, {bytes} bytes): the database has been away too long"
    )]
    Full { records: u64, bytes: u64 },
    #[error("spool `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The spool file and its checkpoint.
struct Spool {
    dir: PathBuf,
    file: File,
    /// Bytes of `file` already applied (the checkpoint).
    offset: u64,
    /// Bytes of whole records in `file`.
    len: u64,
    /// Records after `offset`.
    pending: u64,
    limits: SpoolLimits,
}

impl Spool {
    fn path(dir: &Path) -> PathBuf {
        dir.join("spool.jsonl")
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: Spool::path(&self.dir),
            source,
        }
    }

    /// Opens (creating) the spool in `dir`, takes its lock, drops a record cut
    /// short by a crash and counts the records still to apply.
    fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        let path = Spool::path(dir);
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io(std::io::Error::other(
                "another kuma serve uses this data folder's spool",
            )));
        }
        let offset = std::fs::read_to_string(dir.join("spool.offset"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            file,
            offset,
            len: 0,
            pending: 0,
            limits,
        };
        let mut bytes = Vec::new();
        (&spool.file).seek(SeekFrom::Start(0)).map_err(io)?;
        (&spool.file).read_to_end(&mut bytes).map_err(io)?;
        // Whole lines only: a last line without its newline was never acknowledged.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::warn!(
                bytes = bytes.len() - whole,
                "spool: dropping a record cut short by a crash (it was never acknowledged)"
            );
            spool.file.set_len(whole as u64).map_err(io)?;
            spool.file.sync_data().map_err(io)?;
        }
        spool.len = whole as u64;
        if spool.offset > spool.len {
            // The file was emptied after everything was applied, before the
            // checkpoint was reset.
            spool.offset = 0;
        }
        let start = usize::try_from(spool.offset).unwrap_or(usize::MAX);
        spool.pending = bytes
            .get(start..whole)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        Ok(spool)
    }

    fn full(&self) -> bool {
        self.pending >= self.limits.max_records || self.len - self.offset >= self.limits.max_bytes
    }

    /// Appends one record and syncs it to disk.
    fn append(&mut self, op: &WriteOp) -> Result<(), SpoolError> {
        if self.full() {
            return Err(SpoolError::Full {
                records: self.pending,
                bytes: self.len - self.offset,
            });
        }
        let line = encode(op);
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.io(e))?;
        self.len += line.len() as u64;
        self.pending += 1;
        Ok(())
    }

    /// Up to `max` records after the checkpoint: each with the offset just after it,
    /// and the write or the line that does not read as one.
    fn read(&self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let mut out = Vec::new();
        let mut at = self.offset;
        let mut chunk = vec![0u8; 256 * 1024];
        while out.len() < max && at < self.len {
            let want = usize::try_from(self.len - at)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let buf = chunk.get_mut(..want).unwrap_or_default();
            self.file.read_exact_at(buf, at).map_err(|e| self.io(e))?;
            let mut used = 0;
            for line in buf.split_inclusive(|&b| b == b'\n') {
                if out.len() >= max || line.last() != Some(&b'\n') {
                    break;
                }
                used += line.len();
                let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
                out.push((at + used as u64, decode(&text).ok_or(text.into_owned())));
            }
            if used == 0 {
                if want < chunk.len() {
                    // Cannot happen (only whole lines are counted in `len`); never loop.
                    break;
                }
                // One record longer than the chunk: read it whole.
                chunk.resize(chunk.len() * 2, 0);
                continue;
            }
            at += used as u64;
        }
        Ok(out)
    }

    /// Moves the checkpoint past `applied` records ending at `to`. When nothing is
    /// left the file is emptied first, then the checkpoint reset (a crash between
    /// the two leaves a checkpoint beyond the end, read as 0).
    fn advance(&mut self, to: u64, applied: u64) -> Result<(), SpoolError> {
        self.pending = self.pending.saturating_sub(applied);
        if to >= self.len {
            self.file
                .set_len(0)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| self.io(e))?;
            self.len = 0;
            self.pending = 0;
            self.offset = 0;
        } else {
            self.offset = to;
        }
        let tmp = self.dir.join("spool.offset.tmp");
        std::fs::write(&tmp, format!("{}\n", self.offset))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("spool.offset")))
            .map_err(|e| self.io(e))
    }

    /// Keeps a line the database will never take, for an operator.
    fn reject(&self, line: &str, why: &str) {
        let path = self.dir.join("rejected.jsonl");
        let kept = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()));
        tracing::error!(
            reason = why,
            kept = kept.is_ok(),
            file = %path.display(),
            "spool: a write the database refuses was set aside"
        );
    }
}

/// A record read back: the offset just after it, and its write or the line that
/// does not read as one.
type Spooled = (u64, Result<WriteOp, String>);

/// `CRC32 JSON\n`.
fn encode(op: &WriteOp) -> String {
    // A WriteOp is plain strings, numbers and times: serializing cannot fail.
    let json = serde_json::to_string(op).unwrap_or_default();
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

/// The write in one line (without its newline), if its checksum holds.
fn decode(line: &str) -> Option<WriteOp> {
    let (crc, json) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

/// Whether the database is reachable, and how many writes wait in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStatus {
    pub database_reachable: bool,
    pub pending: u64,
    pub full: bool,
}

/// The store as calls in progress write to it: directly while the database
/// answers, through the spool while it does not. Share it in an `Arc` and run
/// [`SpooledStore::replay`] in one task.
pub struct SpooledStore {
    store: Store,
    spool: Arc<Mutex<Spool>>,
    /// Mirrors of the spool's state, read without its lock on every write.
    pending: AtomicU64,
    full: AtomicBool,
    down: AtomicBool,
    wake: tokio::sync::Notify,
}

impl SpooledStore {
    /// Opens the spool in `dir` (usually `DATA/spool`). Writes left there by a
    /// previous run are applied by [`SpooledStore::replay`].
    pub fn open(store: Store, dir: &Path, limits: SpoolLimits) -> Result<SpooledStore, SpoolError> {
        let spool = Spool::open(dir, limits)?;
        if spool.pending > 0 {
            tracing::warn!(
                writes = spool.pending,
                "spool: writes kept while the database was away will be applied now"
            );
        }
        let s = SpooledStore {
            store,
            pending: AtomicU64::new(spool.pending),
            full: AtomicBool::new(spool.full()),
            down: AtomicBool::new(false),
            spool: Arc::new(Mutex::new(spool)),
            wake: tokio::sync::Notify::new(),
        };
        metrics::gauge!(metric::PENDING).set(s.pending.load(Ordering::Relaxed) as f64);
        Ok(s)
    }

    /// The store itself, for what is not a call's write (starting a call, reads).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn status(&self) -> SpoolStatus {
        SpoolStatus {
            database_reachable: !self.down.load(Ordering::Acquire),
            pending: self.pending.load(Ordering::Acquire),
            full: self.full.load(Ordering::Acquire),
        }
    }

    /// Whether a new call should be refused: the database is away (its row could
    /// not be written) or the spool is full.
    pub fn refuses_new_calls(&self) -> bool {
        let s = self.status();
        !s.database_reachable || s.full
    }

    /// Says the database could not be reached (by a write outside this store, such
    /// as starting a call): writes go to the spool until it answers again.
    pub fn database_unreachable(&self, error: &dyn std::fmt::Display) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(%error, "database unreachable: writes of calls in progress go to the spool; new calls are refused");
        }
        self.wake.notify_one();
    }

    /// Stores `op`: committed to the database, or synced to the spool, before it
    /// returns. The op is moved to the database's writer and comes back only if
    /// it was not written, to be spooled: it is never copied.
    pub async fn write(&self, op: WriteOp) -> Result<(), SpoolError> {
        let s = self.status();
        let ops = if s.database_reachable && s.pending == 0 {
            match op.apply_within(&self.store, Some(DIRECT_TIMEOUT)).await {
                Ok(()) => return Ok(()),
                Err(u) if !u.error.is_unavailable() => return Err(u.error.into()),
                Err(u) => {
                    self.database_unreachable(&u.error);
                    u.ops
                }
            }
        } else {
            vec![op]
        };
        self.append(ops).await
    }

    /// Stores a call's writes `ops` (in order) in one transaction, while the
    /// database answers. When they were not committed (the database is away,
    /// a write was refused, one of them is not taken in a batch, see
    /// [`Store::apply_all`]) nothing of them is stored and they come back, for
    /// the caller to write one by one with [`SpooledStore::write`], which
    /// spools them or reports the one that failed, as if there had been no
    /// batch.
    pub async fn write_all(&self, ops: Vec<WriteOp>) -> Result<(), Unwritten> {
        let s = self.status();
        if !(s.database_reachable && s.pending == 0) {
            return Err(Unwritten {
                error: unavailable("the database is away: the spool takes the writes"),
                ops,
            });
        }
        if !ops.iter().all(WriteOp::batches) {
            return Err(Unwritten {
                error: StoreError::NotBatched,
                ops,
            });
        }
        let out = self.store.lend(ops, Some(DIRECT_TIMEOUT)).await;
        if let Err(u) = &out
            && u.error.is_unavailable()
        {
            self.database_unreachable(&u.error);
        }
        // Otherwise one write's own error: each alone will say which.
        out
    }

    /// Appends `ops` to the spool, in order, up to the first that cannot be.
    async fn append(&self, ops: Vec<WriteOp>) -> Result<(), SpoolError> {
        let (out, spooled, pending, full) = self
            .with_spool(move |spool| {
                let mut spooled = 0u64;
                let mut out = Ok(());
                for op in &ops {
                    out = spool.append(op);
                    if out.is_err() {
                        break;
                    }
                    spooled += 1;
                }
                (out, spooled, spool.pending, spool.full())
            })
            .await?;
        self.pending.store(pending, Ordering::Release);
        self.full.store(full, Ordering::Release);
        metrics::gauge!(metric::PENDING).set(pending as f64);
        metrics::counter!(metric::SPOOLED).increment(spooled);
        match &out {
            Ok(()) => {}
            Err(e @ SpoolError::Full { .. }) => {
                tracing::error!(error = %e, "spool full: a write is lost, new calls are refused")
            }
            Err(e) => tracing::error!(error = %e, "a write could not be spooled"),
        }
        self.wake.notify_one();
        out
    }

    /// Runs `f` on the spool, on a thread of the blocking pool: the spool's lock
    /// is held while a record is synced to disk (milliseconds, seconds on a busy
    /// disk), and a thread that paces RTP must never wait for it (a replay that
    /// took the lock on a worker thread stalled every call's audio behind the
    /// appenders' syncs, issue 16).
    async fn with_spool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Result<T, SpoolError> {
        let spool = Arc::clone(&self.spool);
        tokio::task::spawn_blocking(move || {
            let mut spool = spool.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut spool)
        })
        .await
        .map_err(|e| SpoolError::Io {
            path: PathBuf::from("spool"),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Applies the spooled writes whenever the database answers; runs for ever.
    pub async fn replay(&self) {
        loop {
            let s = self.status();
            if s.database_reachable && s.pending == 0 {
                self.wake.notified().await;
                continue;
            }
            match self.replay_some().await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(RETRY_EVERY).await,
                Err(e) => {
                    tracing::error!(error = %e, "spool: cannot read or update it");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
    }

    /// One batch: true when it made progress (or found nothing to do).
    async fn replay_some(&self) -> Result<bool, SpoolError> {
        if self.pending.load(Ordering::Acquire) == 0 {
            let ok = matches!(
                tokio::time::timeout(DIRECT_TIMEOUT, self.store.ping()).await,
                Ok(Ok(()))
            );
            if ok {
                self.reachable();
            }
            return Ok(ok);
        }
        let (batch, pending) = self
            .with_spool(|spool| spool.read(BATCH).map(|b| (b, spool.pending)))
            .await??;
        if batch.is_empty() {
            // A writer stores its count after letting go of the lock, so it can land
            // after this replay emptied the spool: the count then says "pending"
            // over an empty file, and without this the loop read that file again and
            // again without ever yielding (a worker thread lost, under load).
            self.pending.store(pending, Ordering::Release);
            metrics::gauge!(metric::PENDING).set(pending as f64);
            // Nothing left: the next turn waits (or pings, while the database is away).
            return Ok(pending == 0);
        }
        let mut applied = 0u64;
        let mut to = None;
        let mut stopped = false;
        for (end, record) in batch {
            match record {
                Ok(op) => match op.apply_within(&self.store, Some(DIRECT_TIMEOUT)).await {
                    Ok(()) => metrics::counter!(metric::REPLAYED).increment(1),
                    Err(u) if !u.error.is_unavailable() => {
                        metrics::counter!(metric::REJECTED).increment(1);
                        let line: String = u.ops.iter().map(encode).collect();
                        let why = u.error.to_string();
                        self.with_spool(move |spool| spool.reject(line.trim_end(), &why))
                            .await?;
                    }
                    Err(_) => {
                        stopped = true;
                        break;
                    }
                },
                Err(line) => {
                    metrics::counter!(metric::REJECTED).increment(1);
                    self.with_spool(move |spool| {
                        spool.reject(&line, "the record's checksum does not match")
                    })
                    .await?;
                }
            }
            applied += 1;
            to = Some(end);
        }
        if let Some(to) = to {
            let (pending, full) = self
                .with_spool(move |spool| {
                    spool
                        .advance(to, applied)
                        .map(|()| (spool.pending, spool.full()))
                })
                .await??;
            self.pending.store(pending, Ordering::Release);
            self.full.store(full, Ordering::Release);
            metrics::gauge!(metric::PENDING).set(pending as f64);
            if pending == 0 {
                tracing::warn!("spool: every spooled write is in the database");
            }
        }
        if stopped {
            return Ok(false);
        }
        self.reachable();
        Ok(true)
    }

    fn reachable(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::warn!("database reachable again: applying the spool; new calls are taken");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(call: i64, q: &str) -> WriteOp {
        WriteOp::Answer {
            call,
            question: q.into(),
            choice: "yes".into(),
            digit: "1".into(),
            at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            broadcast: None,
        }
    }

    #[test]
    fn records_round_trip_and_a_changed_byte_is_caught() {
        let op = answer(7, "q_a");
        let line = encode(&op);
        assert!(line.ends_with('\n'));
        assert_eq!(decode(line.trim_end()), Some(op));
        let bad = line.trim_end().replace("q_a", "q_b");
        assert_eq!(decode(&bad), None);
        assert_eq!(decode("zz {}"), None);
        assert_eq!(decode(""), None);
    }

    #[test]
    fn the_spool_survives_reopening_and_drops_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
            for i in 0..3 {
                s.append(&answer(i, "q")).unwrap();
            }
            let got = s.read(2).unwrap();
            assert_eq!(got.len(), 2);
            let (end, _) = got[0];
            s.advance(end, 1).unwrap();
            assert_eq!(s.pending, 2);
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(Spool::path(dir.path()))
            .unwrap();
        f.write_all(b"0badc0de {\"op\":\"comp").unwrap();
        let s = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert_eq!(s.pending, 2);
        let left: Vec<WriteOp> = s
            .read(10)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.unwrap())
            .collect();
        assert_eq!(left, [answer(1, "q"), answer(2, "q")]);
    }

    #[test]
    fn the_spool_is_emptied_once_applied_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_records: 2,
            max_bytes: 1 << 20,
        };
        let mut s = Spool::open(dir.path(), limits.clone()).unwrap();
        s.append(&answer(1, "q")).unwrap();
        s.append(&answer(2, "q")).unwrap();
        assert!(matches!(
            s.append(&answer(3, "q")),
            Err(SpoolError::Full { records: 2, .. })
        ));
        let (end, _) = *s.read(10).unwrap().last().unwrap();
        s.advance(end, 2).unwrap();
        assert_eq!((s.pending, s.len, s.offset), (0, 0, 0));
        assert_eq!(std::fs::metadata(Spool::path(dir.path())).unwrap().len(), 0);
        s.append(&answer(3, "q")).unwrap();
        drop(s);
        let s = Spool::open(dir.path(), limits).unwrap();
        assert_eq!(s.pending, 1);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        assert!(Spool::open(dir.path(), SpoolLimits::default()).is_err());
    }
}
