//! API bearer tokens: who may read what over HTTP (`kuma token`, `crate::web`).
//!
//! A broadcaster's or admin's token may also carry a 6-digit PIN for the
//! studio number, where prompts are recorded by phone ([`Tokens::set_pin`],
//! [`Tokens::check_pin`]): only its keyed hash is kept, and wrong tries lock
//! the studio's PIN entry (see `migrations/*/0009_studio_pins.sql`).
//!
//! Only a token's SHA-256 is stored (hex, in `tokens.hash`); the token itself is
//! printed once by `kuma token create` and never kept, so a copy of the database
//! does not hand out access. A revoked token stays in the table (with
//! `revoked_at`) so that `kuma token list` shows its history. Roles are stored as
//! their names; `crate::web::Role` gives them meaning.

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Store, StoreError, millis, time, with_pool};

/// One token as listed: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The campaigns it is limited to, sorted; empty: every campaign.
    pub campaigns: Vec<String>,
    /// Whether it has a PIN for the studio number (never the PIN).
    pub studio_pin: bool,
}

const INSERT_TOKEN: &str = "\
    INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (name) DO NOTHING";
const LIST_TOKENS: &str = "\
    SELECT name, role, created_at, revoked_at, hash, pin_hash IS NOT NULL FROM tokens \
    ORDER BY created_at, id";
const ALL_TOKEN_CAMPAIGNS: &str =
    "SELECT token_hash, campaign FROM token_campaigns ORDER BY token_hash, campaign";
const REVOKE_TOKEN: &str = "\
    UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL";
const TOKEN_ROLE: &str = "SELECT role FROM tokens WHERE hash = $1 AND revoked_at IS NULL";
const TOKEN_NAME: &str = "SELECT name FROM tokens WHERE hash = $1";
const INSERT_TOKEN_CAMPAIGN: &str = "\
    INSERT INTO token_campaigns (token_hash, campaign) VALUES ($1, $2) \
    ON CONFLICT (token_hash, campaign) DO NOTHING";
const TOKEN_CAMPAIGNS: &str =
    "SELECT campaign FROM token_campaigns WHERE token_hash = $1 ORDER BY campaign";

const SET_PIN: &str = "\
    UPDATE tokens SET pin_hash = $2 \
    WHERE name = $1 AND revoked_at IS NULL AND role IN ('broadcaster', 'admin')";
const PIN_TAKEN: &str = "SELECT 1 FROM tokens WHERE pin_hash = $1";
const TOKEN_OF_PIN: &str = "\
    SELECT name, hash FROM tokens \
    WHERE pin_hash = $1 AND revoked_at IS NULL AND role IN ('broadcaster', 'admin')";
const CALLER_FAILURES: &str = "SELECT COUNT(*) FROM pin_failures WHERE caller = $1 AND at > $2";
const ALL_FAILURES: &str = "SELECT COUNT(*) FROM pin_failures WHERE at > $1";
const ADD_FAILURE: &str = "INSERT INTO pin_failures (caller, at) VALUES ($1, $2)";
const FORGET_FAILURES: &str = "DELETE FROM pin_failures WHERE caller = $1 OR at < $2";

/// Wrong PINs from one caller within [`PIN_WINDOW`] that lock the studio for
/// that caller.
pub const PIN_TRIES: i64 = 5;
/// Wrong PINs from every caller together within [`PIN_WINDOW`] that lock the
/// studio for all: a caller ID is easy to change, so the per-caller count
/// alone would not stop someone guessing (at most 20 guesses an hour in a
/// million PINs).
pub const PIN_TRIES_ALL: i64 = 20;
/// How long wrong PINs are counted.
pub const PIN_WINDOW: TimeDelta = TimeDelta::hours(1);

/// What a PIN entered on the studio number gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// The PIN of this broadcaster's (or admin's) token, limited to these
    /// campaigns (empty: every campaign).
    Ok {
        name: String,
        campaigns: Vec<String>,
    },
    /// No token has it; the try is counted.
    Wrong,
    /// Too many wrong tries: the PIN was not even looked at.
    Locked,
}

/// The key PINs are hashed with, derived from the server secret (a new secret,
/// `kuma secret rotate`, means new PINs).
#[derive(Clone)]
pub struct PinKey([u8; 32]);

impl PinKey {
    pub fn new(pseudonyms: &crate::secret::Pseudonymizer) -> Self {
        PinKey(pseudonyms.derive_key("studio PIN"))
    }

    /// The stored form of a PIN.
    fn hash(&self, pin: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(pin.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The API tokens: their own type over the same database (`Store::tokens`).
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    store: &'a Store,
}

impl Store {
    /// The API tokens.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { store: self }
    }
}

impl Tokens<'_> {
    /// Stores a token's hash under a name; false (and nothing stored) if a token
    /// of that name exists already, revoked or not.
    pub async fn create(
        self,
        name: &str,
        role: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self.store, |pool| {
            sqlx::query(INSERT_TOKEN)
                .bind(name)
                .bind(role)
                .bind(hash)
                .bind(millis(at))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Every token, oldest first.
    pub async fn list(self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>, String, bool)> =
            with_pool!(self.store, |pool| {
                sqlx::query_as(LIST_TOKENS).fetch_all(pool).await?
            });
        let limits: Vec<(String, String)> = with_pool!(self.store, |pool| {
            sqlx::query_as(ALL_TOKEN_CAMPAIGNS).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(name, role, created, revoked, hash, studio_pin)| {
                Ok(TokenInfo {
                    name,
                    role,
                    created_at: time(created)?,
                    revoked_at: revoked.map(time).transpose()?,
                    campaigns: limits
                        .iter()
                        .filter(|(h, _)| *h == hash)
                        .map(|(_, c)| c.clone())
                        .collect(),
                    studio_pin,
                })
            })
            .collect()
    }

    /// Revokes the token of this name; false if there is no such token that still
    /// works.
    pub async fn revoke(self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = with_pool!(self.store, |pool| {
            sqlx::query(REVOKE_TOKEN)
                .bind(name)
                .bind(millis(at))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// The role of the unrevoked token with this hash, if any.
    pub async fn role(self, hash: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self.store, |pool| {
            sqlx::query_as(TOKEN_ROLE)
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(role,)| role))
    }

    /// The name of a token (who changed a campaign, in its history).
    pub async fn name(self, hash: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self.store, |pool| {
            sqlx::query_as(TOKEN_NAME)
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(name,)| name))
    }

    /// Limits the token of this hash to these campaigns. Called *before*
    /// [`Tokens::create`], so that the token never works without them.
    pub async fn limit(self, hash: &str, campaigns: &[String]) -> Result<(), StoreError> {
        for c in campaigns {
            with_pool!(self.store, |pool| {
                sqlx::query(INSERT_TOKEN_CAMPAIGN)
                    .bind(hash)
                    .bind(c)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(())
    }

    /// The campaigns a token is limited to; empty: every campaign.
    pub async fn campaigns(self, hash: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(self.store, |pool| {
            sqlx::query_as(TOKEN_CAMPAIGNS)
                .bind(hash)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }
}

impl Tokens<'_> {
    /// Gives the active broadcaster or admin token `name` this PIN (replacing
    /// its old one). `Ok(false)`: no such token (or an analyst's). A PIN another
    /// token holds is a unique-index error: `kuma token pin` draws one that
    /// [`Tokens::pin_taken`] says is free, so only two draws of the same PIN at
    /// the same moment meet it, as a database error.
    pub async fn set_pin(self, name: &str, key: &PinKey, pin: &str) -> Result<bool, StoreError> {
        let done = with_pool!(self.store, |pool| {
            sqlx::query(SET_PIN)
                .bind(name)
                .bind(key.hash(pin))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Whether some token (revoked or not) holds this PIN already.
    pub async fn pin_taken(self, key: &PinKey, pin: &str) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = with_pool!(self.store, |pool| {
            sqlx::query_as(PIN_TAKEN)
                .bind(key.hash(pin))
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// A PIN entered by `caller` (a pseudonym) on the studio number. Wrong tries
    /// are counted; past [`PIN_TRIES`] from this caller, or [`PIN_TRIES_ALL`] from
    /// everyone, within [`PIN_WINDOW`], the answer is `Locked` whatever the PIN
    /// (the try that reaches the limit is answered `Locked` too). A right PIN
    /// clears the caller's count.
    pub async fn check_pin(
        self,
        key: &PinKey,
        pin: &str,
        caller: &str,
        now: DateTime<Utc>,
    ) -> Result<PinCheck, StoreError> {
        let since = millis(now - PIN_WINDOW);
        let (mine, all): (i64, i64) = with_pool!(self.store, |pool| {
            let mine = sqlx::query_scalar(CALLER_FAILURES)
                .bind(caller)
                .bind(since)
                .fetch_one(pool)
                .await?;
            let all = sqlx::query_scalar(ALL_FAILURES)
                .bind(since)
                .fetch_one(pool)
                .await?;
            (mine, all)
        });
        if mine >= PIN_TRIES || all >= PIN_TRIES_ALL {
            return Ok(PinCheck::Locked);
        }
        let found: Option<(String, String)> = with_pool!(self.store, |pool| {
            sqlx::query_as(TOKEN_OF_PIN)
                .bind(key.hash(pin))
                .fetch_optional(pool)
                .await?
        });
        if let Some((name, hash)) = found {
            // Forget this caller's wrong tries, and everyone's old ones.
            with_pool!(self.store, |pool| {
                sqlx::query(FORGET_FAILURES)
                    .bind(caller)
                    .bind(since)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            let campaigns = self.campaigns(&hash).await?;
            return Ok(PinCheck::Ok { name, campaigns });
        }
        with_pool!(self.store, |pool| {
            sqlx::query(ADD_FAILURE)
                .bind(caller)
                .bind(millis(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        if mine + 1 >= PIN_TRIES || all + 1 >= PIN_TRIES_ALL {
            Ok(PinCheck::Locked)
        } else {
            Ok(PinCheck::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_list_revoke_and_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kuma.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let t0 = time(1_700_000_000_000).unwrap();
        assert!(
            store
                .tokens()
                .create("ana", "analyst", "h1", t0)
                .await
                .unwrap()
        );
        // A name is taken even by a revoked token; the hash is not reused.
        assert!(
            !store
                .tokens()
                .create("ana", "admin", "h2", t0)
                .await
                .unwrap()
        );
        assert_eq!(
            store.tokens().role("h1").await.unwrap().as_deref(),
            Some("analyst")
        );
        assert_eq!(store.tokens().role("h2").await.unwrap(), None);
        assert!(store.tokens().campaigns("h1").await.unwrap().is_empty());
        store
            .tokens()
            .limit("h3", &["b".into(), "a".into(), "a".into()])
            .await
            .unwrap();
        assert_eq!(store.tokens().campaigns("h3").await.unwrap(), ["a", "b"]);
        assert_eq!(
            store.tokens().name("h1").await.unwrap().as_deref(),
            Some("ana")
        );
        assert!(store.tokens().revoke("ana", t0).await.unwrap());
        assert!(!store.tokens().revoke("ana", t0).await.unwrap());
        assert_eq!(store.tokens().role("h1").await.unwrap(), None);
        let list = store.tokens().list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "ana");
        assert_eq!(list[0].revoked_at, Some(t0));
        assert!(list[0].campaigns.is_empty());
        assert!(
            store
                .tokens()
                .create("station", "broadcaster", "h3", t0)
                .await
                .unwrap()
        );
        let list = store.tokens().list().await.unwrap();
        assert_eq!(list[1].name, "station");
        assert_eq!(list[1].campaigns, ["a", "b"]);
        assert!(list[0].campaigns.is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn pins_are_hashed_locked_after_five_wrong_tries_and_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kuma.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let key = PinKey::new(&crate::secret::Pseudonymizer::new(b"test secret"));
        let t = store.tokens();
        let t0 = time(1_700_000_000_000).unwrap();
        t.create("ana", "analyst", "h1", t0).await.unwrap();
        t.create("awa", "broadcaster", "h2", t0).await.unwrap();
        t.limit("h2", &["mali".into()]).await.unwrap();
        // An analyst's token gets no PIN.
        assert!(!t.set_pin("ana", &key, "111111").await.unwrap());
        assert!(t.set_pin("awa", &key, "123456").await.unwrap());
        assert!(t.pin_taken(&key, "123456").await.unwrap());
        assert!(!t.pin_taken(&key, "111111").await.unwrap());
        // Never the PIN itself in the database.
        let (stored,): (String,) = with_pool!(store, |pool| {
            sqlx::query_as("SELECT pin_hash FROM tokens WHERE name = 'awa'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert!(!stored.contains("123456"));
        assert_eq!(stored.len(), 64);
        let ok = PinCheck::Ok {
            name: "awa".into(),
            campaigns: vec!["mali".into()],
        };
        assert_eq!(t.check_pin(&key, "123456", "c_a", t0).await.unwrap(), ok);
        // The same PIN under another secret is another hash.
        let other = PinKey::new(&crate::secret::Pseudonymizer::new(b"other"));
        assert_eq!(
            t.check_pin(&other, "123456", "c_b", t0).await.unwrap(),
            PinCheck::Wrong
        );
        // Four wrong tries, then the fifth locks: even the right PIN is refused.
        for _ in 0..4 {
            assert_eq!(
                t.check_pin(&key, "000000", "c_a", t0).await.unwrap(),
                PinCheck::Wrong
            );
        }
        assert_eq!(
            t.check_pin(&key, "000000", "c_a", t0).await.unwrap(),
            PinCheck::Locked
        );
        assert_eq!(
            t.check_pin(&key, "123456", "c_a", t0).await.unwrap(),
            PinCheck::Locked
        );
        // Another caller is not locked out by c_a...
        assert_eq!(t.check_pin(&key, "123456", "c_b", t0).await.unwrap(), ok);
        // ...and c_a may try again an hour later.
        let later = t0 + PIN_WINDOW + TimeDelta::seconds(1);
        assert_eq!(t.check_pin(&key, "123456", "c_a", later).await.unwrap(), ok);
        // Twenty wrong tries from many callers lock everyone.
        for i in 0..(PIN_TRIES_ALL - 1) {
            assert_eq!(
                t.check_pin(&key, "999999", &format!("c_{i}"), later)
                    .await
                    .unwrap(),
                PinCheck::Wrong
            );
        }
        assert_eq!(
            t.check_pin(&key, "999999", "c_x", later).await.unwrap(),
            PinCheck::Locked
        );
        assert_eq!(
            t.check_pin(&key, "123456", "c_y", later).await.unwrap(),
            PinCheck::Locked
        );
        // A revoked token's PIN stops working.
        let much_later = later + PIN_WINDOW * 2;
        t.revoke("awa", much_later).await.unwrap();
        assert_eq!(
            t.check_pin(&key, "123456", "c_z", much_later)
                .await
                .unwrap(),
            PinCheck::Wrong
        );
        store.close().await;
    }
}
