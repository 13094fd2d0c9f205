//! Caller pseudonyms: a phone number is never stored or logged in clear.
//!
//! A caller is identified by `c_` + the first 16 bytes (hex) of an HMAC-SHA256 of
//! their normalised number, keyed with a secret that stays on the server. The same
//! caller gets the same pseudonym on every call (so repeat callers can be counted),
//! while nobody holding only the database can get the number back by hashing every
//! possible number: that needs the secret too.
//!
//! The secret comes from `KUMA_SECRET`, or from `<data dir>/secret`, made on first
//! use. The database keeps its fingerprint, so that kuma never runs on with
//! another one by mistake; `kuma secret rotate` replaces it (`crate::store::keys`).
//!
//! A leaf: the store keeps the fingerprint and the earlier secrets, the web
//! derives its session keys ([`Pseudonymizer::derive_key`]), `kuma serve` and
//! the CLI load the secret; none of them reads `KUMA_SECRET` or the file itself.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Unusable (too short, malformed, no randomness).
    #[error("{0}")]
    Invalid(String),
    /// Neither `KUMA_SECRET` nor the data folder's `secret` file, where one
    /// must exist already (see [`load_secret`]).
    #[error("no pseudonym secret: KUMA_SECRET is not set and `{}` does not exist", path.display())]
    Missing { path: std::path::PathBuf },
    /// Its file cannot be read or written.
    #[error("pseudonym secret `{}`: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Shortest secret accepted, in bytes.
const MIN_SECRET_LEN: usize = 16;
/// Length of a generated secret, in bytes.
const NEW_SECRET_LEN: usize = 32;
/// Bytes of the HMAC kept in a pseudonym: 128 bits, no collisions in practice.
const PSEUDONYM_BYTES: usize = 16;

/// Turns phone numbers into pseudonyms with a fixed secret (and the secrets it
/// replaced, see [`Pseudonymizer::with_earlier`]).
#[derive(Clone)]
pub struct Pseudonymizer {
    /// HMAC states already keyed, each cloned for each number: the first secret,
    /// then every secret that replaced it (`kuma secret rotate`), oldest first.
    first: Hmac<Sha256>,
    later: Vec<Hmac<Sha256>>,
    /// The station's country calling code (`223`), when national numbers
    /// (`76543212`) are joined to their international spelling
    /// (`+22376543212`) before the HMAC; see [`Pseudonymizer::with_country`].
    country: Option<String>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { .. }")
    }
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first): this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// One HMAC step: `c_` and the first 16 bytes of the HMAC of `input`, in hex.
fn step(key: &Hmac<Sha256>, input: &[u8]) -> String {
    let mut mac = key.clone();
    mac.update(input);
    let digest = mac.finalize().into_bytes();
    format!("c_{}", hex::encode(&digest[..PSEUDONYM_BYTES]))
}

/// Whether `s` has a pseudonym's form: `c_` and 32 lowercase hex digits.
pub fn is_pseudonym(s: &str) -> bool {
    s.strip_prefix("c_").is_some_and(|hex| {
        hex.len() == 2 * PSEUDONYM_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl Pseudonymizer {
    pub fn new(secret: &[u8]) -> Self {
        Pseudonymizer {
            first: keyed(secret),
            later: Vec::new(),
            country: None,
        }
    }

    /// After `kuma secret rotate`: a caller's pseudonym is the one the `earlier`
    /// secrets gave (oldest first), keyed again with `secret` (an HMAC of the
    /// earlier pseudonym). Nobody holding an earlier secret alone can compute a
    /// pseudonym any more, and the stored ones were re-keyed the same way, so a
    /// caller keeps one pseudonym over the database's life.
    pub fn with_earlier(earlier: &[Vec<u8>], secret: &[u8]) -> Self {
        match earlier.split_first() {
            None => Self::new(secret),
            Some((first, rest)) => Pseudonymizer {
                first: keyed(first),
                later: rest
                    .iter()
                    .map(|s| keyed(s))
                    .chain([keyed(secret)])
                    .collect(),
                country: None,
            },
        }
    }

    /// The same, joining a national number (no `+` or `00`: `76543212`, or
    /// `076543212` with a trunk `0`) to its international spelling in
    /// `country` (`223`: `+22376543212`), so a caller has one pseudonym
    /// whichever way a gateway or provider writes their number. `None` keeps
    /// numbers as written. The database records the code its pseudonyms were
    /// made with (`crate::store::Store::join_numbers`).
    #[must_use]
    pub fn with_country(mut self, country: Option<&str>) -> Self {
        self.country = country
            .map(|c| c.trim_start_matches('+').to_owned())
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        self
    }

    /// The country calling code national numbers are joined with, if any.
    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    /// The key of the current secret (the last one).
    fn current(&self) -> &Hmac<Sha256> {
        self.later.last().unwrap_or(&self.first)
    }

    /// The caller's pseudonym, e.g. `c_3f0a…` (34 characters). Spellings of the
    /// same number (`+223 70-00 00 00`, `0022370000000`, `sip:+22370000000@host`)
    /// give the same pseudonym.
    pub fn pseudonym(&self, number: &str) -> String {
        self.chain(&normalize(number, self.country.as_deref()))
    }

    /// The pseudonym `number` had as written, before national and
    /// international spellings were joined, when that is another one: a
    /// `[callback] blocked` entry made then still blocks it.
    pub fn as_written(&self, number: &str) -> Option<String> {
        let written = normalize(number, None);
        (self.country.is_some() && written != normalize(number, self.country.as_deref()))
            .then(|| self.chain(&written))
    }

    fn chain(&self, normalized: &str) -> String {
        let mut p = step(&self.first, normalized.as_bytes());
        for key in &self.later {
            p = step(key, p.as_bytes());
        }
        p
    }

    /// A pseudonym given before the current secret was added, as it is now (for
    /// `kuma secret rotate`, which re-keys the stored ones).
    pub fn rekey(&self, earlier_pseudonym: &str) -> String {
        step(self.current(), earlier_pseudonym.as_bytes())
    }

    /// A fingerprint of the secret (hex, 16 bytes of a derived key): it tells two
    /// secrets apart without saying anything about either.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive_key("secret fingerprint")[..16])
    }

    /// A key for another purpose (e.g. signing the web simulator's sessions),
    /// derived from the same secret, so there is one secret to keep. The input
    /// starts with capitals, which a normalised number never holds (numbers
    /// without digits are lowercased), so no pseudonym ever reveals part of a
    /// derived key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.current().clone();
        mac.update(b"KUMA-DERIVED-KEY\n");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The number as the pseudonym sees it: no URI scheme or host, no punctuation,
/// a leading `+` for international numbers ("00" becomes "+"), and with a
/// `country` code, national numbers made international (a trunk `0` dropped).
/// Something with no digit at all (e.g. "anonymous") is kept as it is,
/// lowercased, so that it does not share a pseudonym with every other
/// number-less caller ID.
fn normalize(number: &str, country: Option<&str>) -> String {
    let mut s = number.trim();
    for scheme in ["tel:", "sips:", "sip:"] {
        if s.len() >= scheme.len()
            && s.is_char_boundary(scheme.len())
            && s[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            s = &s[scheme.len()..];
            break;
        }
    }
    // sip:NUMBER@host;params, tel:NUMBER;phone-context=...
    let s = s.split(['@', ';']).next().unwrap_or("");

    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // Spaces, dashes, dots, parentheses and anything else are spelling.
        if c.is_ascii_digit() || (c == '+' && out.is_empty()) {
            out.push(c);
        }
    }
    if !out.bytes().any(|b| b.is_ascii_digit()) {
        return number.trim().to_lowercase();
    }
    if let Some(rest) = out.strip_prefix("00") {
        out = format!("+{rest}");
    }
    if let Some(cc) = country
        && !out.starts_with('+')
    {
        let national = out.strip_prefix('0').unwrap_or(&out);
        out = format!("+{cc}{national}");
    }
    out
}

/// The pseudonym secret: `KUMA_SECRET` if set and not empty, else the hex secret in
/// `data_dir/secret`, made (32 random bytes, mode 0600) if it does not exist yet.
/// An existing secret file is never overwritten.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    secret_from(std::env::var_os("KUMA_SECRET"), data_dir, true)
}

/// The pseudonym secret as [`load_or_create_secret`] finds it, but never
/// made: [`SecretError::Missing`] if there is none (a command that reads what
/// `kuma serve` stored, run with another data folder, must not make a secret
/// of its own there).
pub fn load_secret(data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    secret_from(std::env::var_os("KUMA_SECRET"), data_dir, false)
}

fn secret_from(
    env: Option<std::ffi::OsString>,
    data_dir: &Path,
    create: bool,
) -> Result<Vec<u8>, SecretError> {
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let bytes = value.into_encoded_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::Invalid(format!(
                "KUMA_SECRET is too short: {} bytes, at least {MIN_SECRET_LEN} expected",
                bytes.len()
            )));
        }
        return Ok(bytes);
    }
    let path = data_dir.join("secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_secret_file(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            create_secret(data_dir, &path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SecretError::Missing { path }),
        Err(source) => Err(SecretError::File { path, source }),
    }
}

/// A secret written in hexadecimal in a file (like `DATA/secret`).
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
        path: path.to_path_buf(),
        source,
    })?;
    parse_secret_file(path, &text)
}

/// Draws a new secret and writes it to `path` (a new file, mode 0600, synced).
pub fn write_new_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let mut secret = vec![0u8; NEW_SECRET_LEN];
    getrandom::fill(&mut secret)
        .map_err(|e| SecretError::Invalid(format!("cannot draw a random secret: {e}")))?;
    write_private(path, format!("{}\n", hex::encode(&secret)).as_bytes()).map_err(|source| {
        SecretError::File {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(secret)
}

fn parse_secret_file(path: &Path, text: &str) -> Result<Vec<u8>, SecretError> {
    let bytes = hex::decode(text.trim()).map_err(|e| {
        SecretError::Invalid(format!(
            "pseudonym secret `{}` is not hexadecimal ({e})",
            path.display()
        ))
    })?;
    if bytes.len() < MIN_SECRET_LEN {
        return Err(SecretError::Invalid(format!(
            "pseudonym secret `{}` is too short: {} bytes, at least {MIN_SECRET_LEN} expected",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Writes a new secret to a temporary file and links it into place: the link fails
/// if another process made the secret meanwhile, and then that one is used.
fn create_secret(data_dir: &Path, path: &Path) -> Result<Vec<u8>, SecretError> {
    let file_error = |source| SecretError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut secret = vec![0u8; NEW_SECRET_LEN];
    getrandom::fill(&mut secret)
        .map_err(|e| SecretError::Invalid(format!("cannot draw a random secret: {e}")))?;
    std::fs::create_dir_all(data_dir).map_err(file_error)?;

    // Unique per process and per attempt, so concurrent makers never share one.
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, Ordering::Relaxed);
    let tmp = data_dir.join(format!(".secret.{}.{attempt}.tmp", std::process::id()));
    let written = write_private(&tmp, format!("{}\n", hex::encode(&secret)).as_bytes());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_error(e));
    }
    let placed = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: rename, unless the secret appeared.
        Err(_) if !path.exists() => std::fs::rename(&tmp, path).map(|()| true),
        Err(_) => Ok(false),
    };
    let _ = std::fs::remove_file(&tmp);
    match placed.map_err(file_error)? {
        true => {
            // Make the new name durable too (best effort).
            if let Ok(dir) = std::fs::File::open(data_dir) {
                let _ = dir.sync_all();
            }
            Ok(secret)
        }
        false => {
            let text = std::fs::read_to_string(path).map_err(file_error)?;
            parse_secret_file(path, &text)
        }
    }
}

/// Creates `path` (replacing a stale temporary file) readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn derived_keys_depend_on_purpose_and_secret_and_no_pseudonym_shows_them() {
        let p = Pseudonymizer::new(SECRET);
        let k = p.derive_key("simulator session");
        assert_eq!(k, p.derive_key("simulator session"));
        assert_ne!(k, p.derive_key("flow-results package id"));
        assert_ne!(
            k,
            Pseudonymizer::new(b"another secret, long").derive_key("simulator session")
        );
        // Whatever a caller ID says, its pseudonym is not a piece of a derived key.
        for caller in [
            "KUMA-DERIVED-KEY\nsimulator session",
            "kuma-derived-key\nsimulator session",
        ] {
            let shown = p.pseudonym(caller);
            assert_ne!(&shown[2..], hex::encode(&k[..PSEUDONYM_BYTES]));
        }
    }

    #[test]
    fn spellings_of_one_number_share_a_pseudonym() {
        let p = Pseudonymizer::new(SECRET);
        let expected = p.pseudonym("+22370000000");
        for spelling in [
            "+223 70 00 00 00",
            "+223-70-00-00-00",
            "+223.70.00.00.00",
            "(+223) 70 00 00 00",
            "0022370000000",
            "00 223 70 00 00 00",
            "tel:+22370000000",
            "TEL:+223-70-00-00-00",
            "sip:+22370000000@pbx.example.org",
            "sip:0022370000000@10.0.0.1:5060;user=phone",
            "  +22370000000 ",
        ] {
            assert_eq!(p.pseudonym(spelling), expected, "{spelling}");
        }
        assert_ne!(
            p.pseudonym("22370000000"),
            expected,
            "without + is another number"
        );
        assert_ne!(p.pseudonym("+22370000001"), expected);
    }

    #[test]
    fn with_a_country_code_national_and_international_spellings_share_a_pseudonym() {
        let p = Pseudonymizer::new(SECRET).with_country(Some("223"));
        let expected = p.pseudonym("+22376543212");
        for spelling in [
            "76543212",
            "076543212",
            "76 54 32 12",
            "0022376543212",
            "sip:76543212@10.0.0.1;user=phone",
            "tel:+223-76-54-32-12",
        ] {
            assert_eq!(p.pseudonym(spelling), expected, "{spelling}");
        }
        // A national number as written had another pseudonym, still known
        // (for blocked lists made then); an international one had this one.
        let plain = Pseudonymizer::new(SECRET);
        assert_ne!(plain.pseudonym("76543212"), expected);
        assert_eq!(plain.pseudonym("+22376543212"), expected);
        assert_eq!(p.as_written("76543212"), Some(plain.pseudonym("76543212")));
        assert_eq!(p.as_written("+22376543212"), None);
        assert_eq!(plain.as_written("76543212"), None);
        // Another country's number stays itself; number-less IDs stay apart.
        assert_ne!(p.pseudonym("+33612345678"), p.pseudonym("+223612345678"));
        assert_eq!(p.pseudonym("anonymous"), plain.pseudonym("anonymous"));
        assert_eq!(p.country(), Some("223"));
        assert_eq!(
            Pseudonymizer::new(SECRET)
                .with_country(Some("+223"))
                .pseudonym("76543212"),
            expected
        );
    }

    #[test]
    fn pseudonyms_have_the_documented_shape() {
        let pseudonym = Pseudonymizer::new(SECRET).pseudonym("+22370000000");
        assert!(pseudonym.starts_with("c_"));
        assert_eq!(pseudonym.len(), 2 + 2 * PSEUDONYM_BYTES);
        assert!(
            pseudonym[2..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn another_secret_gives_another_pseudonym() {
        let a = Pseudonymizer::new(SECRET).pseudonym("+22370000000");
        let b = Pseudonymizer::new(b"another secret, also long enough").pseudonym("+22370000000");
        assert_ne!(a, b);
    }

    #[test]
    fn pseudonyms_do_not_contain_the_number() {
        let p = Pseudonymizer::new(SECRET);
        for number in ["+22370000000", "+22376543210", "0022365123456", "12345"] {
            let pseudonym = p.pseudonym(number);
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            assert!(
                !pseudonym.contains(&digits),
                "{pseudonym} contains {digits}"
            );
            // Nor any 6-digit run of it.
            for window in digits.as_bytes().windows(6) {
                let run = std::str::from_utf8(window).unwrap();
                assert!(!pseudonym.contains(run), "{pseudonym} contains {run}");
            }
        }
    }

    #[test]
    fn number_less_caller_ids_stay_apart() {
        let p = Pseudonymizer::new(SECRET);
        assert_ne!(p.pseudonym("anonymous"), p.pseudonym("unavailable"));
        assert_eq!(p.pseudonym("anonymous"), p.pseudonym("Anonymous"));
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = secret_from(None, &data, true).unwrap();
        assert_eq!(first.len(), NEW_SECRET_LEN);
        let file = data.join("secret");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.trim(), hex::encode(&first));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = secret_from(None, &data, true).unwrap();
        assert_eq!(first, second);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    }

    #[test]
    fn concurrent_makers_agree_on_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| secret_from(None, &data, true).unwrap()))
                .collect();
            makers.into_iter().map(|m| m.join().unwrap()).collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn environment_secret_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let from_env =
            secret_from(Some("a secret of 24 bytes....".into()), dir.path(), true).unwrap();
        assert_eq!(from_env, b"a secret of 24 bytes....");
        assert!(!dir.path().join("secret").exists());

        let err = secret_from(Some("short".into()), dir.path(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KUMA_SECRET is too short: 5 bytes, at least 16 expected"
        );
        // Empty means unset.
        assert_eq!(
            secret_from(Some("".into()), dir.path(), true)
                .unwrap()
                .len(),
            NEW_SECRET_LEN
        );
    }

    #[test]
    fn a_damaged_secret_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "not hex at all").unwrap();
        let err = secret_from(None, dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("is not hexadecimal"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "not hex at all");
    }

    #[test]
    fn a_secret_that_must_exist_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let err = secret_from(None, &data, false).unwrap_err().to_string();
        assert!(
            err.starts_with("no pseudonym secret: KUMA_SECRET is not set and"),
            "{err}"
        );
        assert!(!data.exists());
        let made = secret_from(None, &data, true).unwrap();
        assert_eq!(secret_from(None, &data, false).unwrap(), made);
    }
}
