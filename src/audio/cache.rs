//! The disk cache of prepared prompts, under the data folder.
//!
//! Decoding and resampling a campaign's recordings takes a moment; a restart should
//! not. Each prepared prompt is kept as `<data>/audio-cache/<key>.prompt`, where the
//! key is a SHA-256 of the recording's *bytes* and of the pipeline settings (target
//! level, ceiling, length limit, pipeline version). A restart with unchanged audio
//! hashes the files and reads the results back; a file that changed, even with the
//! same name, size and date, gets a new key and is prepared again; changing a setting
//! redoes everything. Old entries are removed by [`Cache::prune`]
//! (`kuma audio prepare` without a campaign does it).
//!
//! An entry holds the report ([`Summary`], JSON) and the 8 kHz linear samples, from
//! which both G.711 laws are encoded on loading (encoding is much cheaper than
//! reading twice the bytes, and A-law must come from linear, not from µ-law). An
//! entry is written to a temporary file and renamed into place, so a crash never
//! leaves half an entry under a valid name; an entry that does not read back whole
//! is a miss, never an error.
//!
//! Layout: `KUMAPRM1`, u32 LE length of the JSON summary, the JSON, u64 LE sample
//! count, the samples as i16 LE.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::report::Summary;

const MAGIC: &[u8; 8] = b"KUMAPRM1";
const EXTENSION: &str = "prompt";

/// Folder of the cache inside the data folder.
pub const CACHE_FOLDER: &str = "audio-cache";

/// The cache folder, or none.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
    writable: bool,
}

/// A prepared prompt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub summary: Summary,
    pub pcm: Vec<i16>,
}

impl Cache {
    /// The cache under `data_dir`, read and written (created on first write).
    pub fn open(data_dir: &Path) -> Cache {
        Cache {
            dir: Some(data_dir.join(CACHE_FOLDER)),
            writable: true,
        }
    }

    /// The cache under `data_dir`, only read (`kuma check` writes nothing).
    pub fn read_only(data_dir: &Path) -> Cache {
        Cache {
            dir: Some(data_dir.join(CACHE_FOLDER)),
            writable: false,
        }
    }

    /// No cache: everything is prepared from the recordings.
    pub fn none() -> Cache {
        Cache {
            dir: None,
            writable: false,
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The key of a recording under these settings: SHA-256 of `fingerprint` and the
    /// file's bytes (read in pieces: a huge file costs time, not memory).
    pub fn key(path: &Path, fingerprint: &str) -> io::Result<String> {
        let mut hasher = Self::hasher(fingerprint);
        let mut file = File::open(path)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// The key [`Cache::key`] gives the file holding `bytes`: a recording
    /// prepared before it is written (an upload) is found by the reload after.
    pub fn key_of(bytes: &[u8], fingerprint: &str) -> String {
        let mut hasher = Self::hasher(fingerprint);
        hasher.update(bytes);
        hex::encode(hasher.finalize())
    }

    fn hasher(fingerprint: &str) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(b"kuma prompt cache\0");
        hasher.update(fingerprint.as_bytes());
        hasher.update(b"\0");
        hasher
    }

    fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{key}.{EXTENSION}")))
    }

    /// The entry for `key`, if there is a whole one.
    pub fn load(&self, key: &str) -> Option<Entry> {
        let bytes = fs::read(self.entry_path(key)?).ok()?;
        parse(&bytes)
    }

    /// Stores an entry (a no-op for a read-only cache or none).
    pub fn store(&self, key: &str, entry: &Entry) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        let (Some(dir), Some(path)) = (&self.dir, self.entry_path(key)) else {
            return Ok(());
        };
        fs::create_dir_all(dir)?;
        let json = serde_json::to_vec(&entry.summary).map_err(io::Error::other)?;
        let json_len = u32::try_from(json.len()).map_err(io::Error::other)?;
        let mut bytes = Vec::with_capacity(8 + 4 + json.len() + 8 + 2 * entry.pcm.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&json_len.to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&(entry.pcm.len() as u64).to_le_bytes());
        for s in &entry.pcm {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let written = File::create(&tmp).and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_data()
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// Removes every entry whose key is not in `keep`; returns how many went.
    pub fn prune(&self, keep: &HashSet<String>) -> io::Result<usize> {
        let Some(dir) = &self.dir else {
            return Ok(0);
        };
        if !self.writable {
            return Ok(0);
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            let stale = path.extension().and_then(|e| e.to_str()) == Some(EXTENSION)
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|k| !keep.contains(k));
            if stale {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn parse(bytes: &[u8]) -> Option<Entry> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let json_len = u32::from_le_bytes(*len) as usize;
    let json = rest.get(..json_len)?;
    let rest = rest.get(json_len..)?;
    let summary: Summary = serde_json::from_slice(json).ok()?;
    let (count, rest) = rest.split_first_chunk::<8>()?;
    let count = usize::try_from(u64::from_le_bytes(*count)).ok()?;
    if rest.len() != count.checked_mul(2)? {
        return None;
    }
    let pcm = rest
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Some(Entry { summary, pcm })
}

/// Keys of a set of reports, for [`Cache::prune`].
pub fn keys<'a>(keys: impl IntoIterator<Item = &'a Option<String>>) -> HashSet<String> {
    keys.into_iter().flatten().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            summary: Summary {
                format: "wav/pcm_s16le".into(),
                sample_rate: 44_100,
                channels: 2,
                source_ms: 2000,
                prepared_ms: 1400,
                source_level_db: -15.0,
                level_change_db: -5.0,
                limited_db: 0.0,
                warnings: vec!["clipped".into()],
            },
            pcm: vec![0, 1, -1, i16::MAX, i16::MIN],
        }
    }

    #[test]
    fn the_key_of_bytes_is_the_key_of_the_file_holding_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wav");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&file, &bytes).unwrap();
        assert_eq!(
            Cache::key(&file, "fp").unwrap(),
            Cache::key_of(&bytes, "fp")
        );
        assert_ne!(Cache::key_of(&bytes, "fp"), Cache::key_of(&bytes, "other"));
    }

    #[test]
    fn an_entry_reads_back_as_written_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path());
        cache.store("abc", &entry()).unwrap();
        assert_eq!(cache.load("abc"), Some(entry()));
        assert_eq!(cache.load("abd"), None);
        let path = dir.path().join(CACHE_FOLDER).join("abc.prompt");
        let bytes = fs::read(&path).unwrap();
        for cut in [0, 5, 12, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(cache.load("abc"), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_read_only_cache_writes_nothing_and_prune_keeps_what_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        Cache::read_only(dir.path()).store("abc", &entry()).unwrap();
        assert!(!dir.path().join(CACHE_FOLDER).exists());
        let cache = Cache::open(dir.path());
        cache.store("keep", &entry()).unwrap();
        cache.store("old", &entry()).unwrap();
        let keep: HashSet<String> = ["keep".to_string()].into();
        assert_eq!(cache.prune(&keep).unwrap(), 1);
        assert!(cache.load("keep").is_some());
        assert!(cache.load("old").is_none());
    }

    #[test]
    fn the_key_changes_with_the_bytes_and_with_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wav");
        fs::write(&f, b"one").unwrap();
        let k1 = Cache::key(&f, "s1").unwrap();
        assert_eq!(k1, Cache::key(&f, "s1").unwrap());
        assert_ne!(k1, Cache::key(&f, "s2").unwrap());
        fs::write(&f, b"two").unwrap();
        assert_ne!(k1, Cache::key(&f, "s1").unwrap());
    }
}
