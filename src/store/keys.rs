//! What the server secret keys in a database, over the database's life: the
//! pseudonyms and the sealed numbers, checked against the secret's fingerprint,
//! and replaced by `kuma secret rotate`.
//!
//! Pseudonyms are one-way (an HMAC of the number), so they cannot be computed
//! again under a new secret from what is stored. Rotation therefore keys every
//! stored pseudonym once more with the new secret (an HMAC of the old
//! pseudonym), and new callers get the same chain ([`Pseudonymizer::with_earlier`]):
//! a caller keeps one pseudonym, and nobody holding only an old secret (a leaked
//! `KUMA_SECRET`, an old backup of `data/secret`) can compute a pseudonym or open a
//! sealed number of the rotated database. The earlier secrets stay in
//! `kuma_facts`, sealed under the current one: whoever has the current secret and
//! the database has everything, as before. Sealed numbers (call-backs waiting,
//! subscribers) are opened and sealed again under the new secret.

use super::{Store, StoreError, with_pool, write_tx};
use crate::outbound::sealed::Sealer;
use crate::secret::Pseudonymizer;

/// The `kuma_facts` row that holds the earlier secrets, sealed.
const EARLIER: &str = "earlier_secrets";
/// The associated data of that sealed row.
const EARLIER_LABEL: &str = "kuma earlier secrets v1";

const FACT: &str = "SELECT value FROM kuma_facts WHERE name = $1";
const SET_FACT: &str = "INSERT INTO kuma_facts (name, value) VALUES ($1, $2) \
    ON CONFLICT (name) DO UPDATE SET value = $2";
const RECORD_FINGERPRINT: &str = "INSERT INTO kuma_facts (name, value) \
    VALUES ('secret_fingerprint', $1) ON CONFLICT (name) DO NOTHING";

/// The `kuma_facts` row that holds the country code national numbers are
/// joined with before the HMAC (`""` or no row: numbers as written).
const COUNTRY: &str = "pseudonym_country";

/// The new pseudonym of every call, from the table of old and new ones.
const REKEY_CALLS: &str = "UPDATE calls \
    SET caller = (SELECT new FROM kuma_rekey WHERE old = calls.caller) \
    WHERE caller IN (SELECT old FROM kuma_rekey)";

/// The new pseudonym of every row, from the table of old and new ones.
const REKEY: [&str; 3] = [
    REKEY_CALLS,
    "UPDATE callbacks SET caller = (SELECT new FROM kuma_rekey WHERE old = callbacks.caller) \
     WHERE caller IN (SELECT old FROM kuma_rekey)",
    "UPDATE subscribers SET caller = (SELECT new FROM kuma_rekey WHERE old = subscribers.caller) \
     WHERE caller IN (SELECT old FROM kuma_rekey)",
];

/// The pseudonymiser and the sealer of a database, under its secret.
#[derive(Debug, Clone)]
pub struct Keys {
    pub pseudonyms: Pseudonymizer,
    pub sealer: Sealer,
}

/// A call-back with its number: id, campaign, caller, sealed number, broadcast.
type WaitingRow = (i64, String, String, Vec<u8>, Option<i64>);

/// What joining national and international spellings changed
/// ([`Store::join_numbers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// The country code before (`None`: numbers as written) and now.
    pub was: Option<String>,
    pub now: Option<String>,
    /// Callers with a sealed number (subscribers, call-backs waiting) whose
    /// pseudonym changed, their whole history with them.
    pub callers: u64,
    /// Subscriptions and waiting call-backs that were the same listener twice
    /// (two spellings) and are now one: the extra subscription erased, the
    /// extra call-back cancelled with its number erased.
    pub merged: u64,
    /// Whether the database held calls already: callers known only by a
    /// national spelling and with no sealed number cannot be carried over.
    pub had_calls: bool,
}

/// What `kuma secret rotate` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Distinct pseudonyms re-keyed.
    pub pseudonyms: u64,
    /// Sealed numbers opened and sealed again.
    pub numbers: u64,
}

fn another_secret() -> StoreError {
    StoreError::Secret(
        "this database was written with another secret (KUMA_SECRET, or `secret` in the data folder): \
         start kuma with that secret; with this one every caller would get a new pseudonym"
            .into(),
    )
}

fn earlier_from(sealed: Option<String>, sealer: &Sealer) -> Result<Vec<Vec<u8>>, StoreError> {
    let Some(sealed) = sealed else {
        return Ok(Vec::new());
    };
    let bad = || StoreError::Secret("the earlier secrets in kuma_facts cannot be opened".into());
    let bytes = hex::decode(sealed.trim()).map_err(|_| bad())?;
    let list = sealer.open(&bytes, EARLIER_LABEL).map_err(|_| bad())?;
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| hex::decode(s).map_err(|_| bad()))
        .collect()
}

fn earlier_sealed(earlier: &[Vec<u8>], sealer: &Sealer) -> Result<String, StoreError> {
    let list: Vec<String> = earlier.iter().map(hex::encode).collect();
    let sealed = sealer
        .seal(&list.join(","), EARLIER_LABEL)
        .map_err(|e| StoreError::Secret(e.to_string()))?;
    Ok(hex::encode(sealed))
}

impl Store {
    /// The keys of this database under `secret`: its fingerprint is recorded the
    /// first time, and another secret is refused (one clear error) rather than
    /// giving every caller a new pseudonym, making blocked numbers callable again
    /// and leaving sealed numbers unreadable.
    pub async fn keys(&self, secret: &[u8]) -> Result<Keys, StoreError> {
        let mine = Pseudonymizer::new(secret).fingerprint();
        let (recorded, earlier, country): (Option<String>, Option<String>, Option<String>) =
            with_pool!(self, |pool| {
                sqlx::query(RECORD_FINGERPRINT)
                    .bind(&mine)
                    .execute(pool)
                    .await?;
                let fp = sqlx::query_scalar(FACT)
                    .bind("secret_fingerprint")
                    .fetch_optional(pool)
                    .await?;
                let earlier = sqlx::query_scalar(FACT)
                    .bind(EARLIER)
                    .fetch_optional(pool)
                    .await?;
                let country = sqlx::query_scalar(FACT)
                    .bind(COUNTRY)
                    .fetch_optional(pool)
                    .await?;
                (fp, earlier, country)
            });
        if recorded.as_deref() != Some(mine.as_str()) {
            return Err(another_secret());
        }
        let sealer = Sealer::new(secret);
        let earlier = earlier_from(earlier, &sealer)?;
        Ok(Keys {
            pseudonyms: Pseudonymizer::with_earlier(&earlier, secret)
                .with_country(country.as_deref()),
            sealer,
        })
    }

    /// Makes the database's pseudonyms join national numbers to their
    /// international spelling with `country` (`[callback] country_code`), or
    /// keep them as written (`None`), if they do not already; `kuma serve`
    /// calls it as it starts, with the station's settings, and the keys it
    /// returns are the ones to use. Every caller with a sealed number
    /// (subscribers, call-backs waiting) gets the new pseudonym with their
    /// whole history, in one transaction, and one listener subscribed under
    /// two spellings becomes one subscriber; a caller known only from earlier
    /// calls in national spelling cannot be (the number is not kept) and gets a
    /// new pseudonym from their next call. Nothing to do: `None`.
    ///
    /// Once a code is recorded, another one (or none) is refused unless
    /// `change` is set: a node started with other settings (a missing
    /// `kuma.toml`) would otherwise give callers other pseudonyms than its
    /// neighbours, and make `blocked` entries of national numbers callable.
    pub async fn join_numbers(
        &self,
        keys: Keys,
        country: Option<&str>,
        change: bool,
    ) -> Result<(Keys, Option<Joined>), StoreError> {
        let wanted = keys.pseudonyms.clone().with_country(country);
        if wanted.country() == keys.pseudonyms.country() {
            return Ok((keys, None));
        }
        let (old, new) = (&keys.pseudonyms, &wanted);
        let sealer = &keys.sealer;
        let joined = write_tx!(self, |tx| {
            // Another process may have joined them meanwhile: the fact decides.
            let recorded: Option<String> = sqlx::query_scalar(FACT)
                .bind(COUNTRY)
                .fetch_optional(&mut *tx)
                .await?;
            let recorded = recorded.filter(|c| !c.is_empty());
            if let Some(code) = &recorded
                && !change
                && Some(code.as_str()) != new.country()
            {
                let now = new
                    .country()
                    .map_or("none".to_owned(), |c| format!("`country_code = \"{c}\"`"));
                return Err(StoreError::Secret(format!(
                    "this database's pseudonyms join national numbers with country code {code} \
                     ([callback] country_code = \"{code}\"), and these settings say {now}: every \
                     kuma on one database needs the same country_code (is kuma.toml the \
                     station's?); to change it, stop every kuma on the database and start one \
                     with --change-country-code"
                )));
            }
            let mut joined = Joined {
                was: recorded.clone(),
                now: new.country().map(str::to_owned),
                ..Joined::default()
            };
            if recorded.as_deref() != new.country() {
                joined.had_calls = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM calls")
                    .fetch_one(&mut *tx)
                    .await?
                    > 0;
                let was = old.clone().with_country(recorded.as_deref());
                let open = |sealed: &[u8], caller: &str| {
                    sealer.open(sealed, caller).map_err(|_| {
                        StoreError::Secret(format!(
                            "a sealed number of {caller} does not open: nothing was changed"
                        ))
                    })
                };
                let reseal = |number: &str, caller: &str| {
                    sealer
                        .seal(number, caller)
                        .map_err(|e| StoreError::Secret(e.to_string()))
                };
                let mut renamed = std::collections::BTreeMap::new();
                let subscribers: Vec<(String, String, Vec<u8>)> =
                    sqlx::query_as("SELECT campaign, caller, number FROM subscribers")
                        .fetch_all(&mut *tx)
                        .await?;
                for (campaign, caller, sealed) in subscribers {
                    let number = open(&sealed, &caller)?;
                    let now = new.pseudonym(&number);
                    if now == caller || was.pseudonym(&number) != caller {
                        continue;
                    }
                    let taken: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM subscribers WHERE campaign = $1 AND caller = $2",
                    )
                    .bind(&campaign)
                    .bind(&now)
                    .fetch_one(&mut *tx)
                    .await?;
                    if taken > 0 {
                        sqlx::query("DELETE FROM subscribers WHERE campaign = $1 AND caller = $2")
                            .bind(&campaign)
                            .bind(&caller)
                            .execute(&mut *tx)
                            .await?;
                        joined.merged += 1;
                    } else {
                        sqlx::query(
                            "UPDATE subscribers SET caller = $1, number = $2 \
                             WHERE campaign = $3 AND caller = $4",
                        )
                        .bind(&now)
                        .bind(reseal(&number, &now)?)
                        .bind(&campaign)
                        .bind(&caller)
                        .execute(&mut *tx)
                        .await?;
                    }
                    renamed.insert(caller, now);
                }
                let waiting: Vec<WaitingRow> = sqlx::query_as(
                    "SELECT id, campaign, caller, number, broadcast FROM callbacks \
                     WHERE number IS NOT NULL ORDER BY id",
                )
                .fetch_all(&mut *tx)
                .await?;
                for (id, campaign, caller, sealed, broadcast) in waiting {
                    let number = open(&sealed, &caller)?;
                    let now = new.pseudonym(&number);
                    if now == caller || was.pseudonym(&number) != caller {
                        continue;
                    }
                    // One call per listener and broadcast (a unique index).
                    let twice: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM callbacks \
                         WHERE campaign = $1 AND caller = $2 AND broadcast = $3",
                    )
                    .bind(&campaign)
                    .bind(&now)
                    .bind(broadcast)
                    .fetch_one(&mut *tx)
                    .await?;
                    if twice > 0 {
                        sqlx::query(
                            "UPDATE callbacks SET status = 'cancelled', note = 'same_listener', \
                             number = NULL, next_at = NULL WHERE id = $1",
                        )
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        joined.merged += 1;
                    } else {
                        sqlx::query("UPDATE callbacks SET number = $1 WHERE id = $2")
                            .bind(reseal(&number, &now)?)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    renamed.insert(caller, now);
                }
                // Their history: calls (through a table of old and new
                // pseudonyms, one pass over a table without an index on
                // callers), and call-backs over (a second one for the same
                // broadcast keeps its old pseudonym).
                sqlx::query(
                    "CREATE TEMPORARY TABLE kuma_rekey (old TEXT PRIMARY KEY, new TEXT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                for (caller, now) in &renamed {
                    sqlx::query("INSERT INTO kuma_rekey (old, new) VALUES ($1, $2)")
                        .bind(caller)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE callbacks SET caller = $1 WHERE caller = $2 AND NOT EXISTS \
                         (SELECT 1 FROM callbacks AS c WHERE c.campaign = callbacks.campaign \
                          AND c.caller = $1 AND c.broadcast = callbacks.broadcast)",
                    )
                    .bind(now)
                    .bind(caller)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(REKEY_CALLS).execute(&mut *tx).await?;
                sqlx::query("DROP TABLE kuma_rekey")
                    .execute(&mut *tx)
                    .await?;
                joined.callers = u64::try_from(renamed.len()).unwrap_or(u64::MAX);
                sqlx::query(SET_FACT)
                    .bind(COUNTRY)
                    .bind(new.country().unwrap_or(""))
                    .execute(&mut *tx)
                    .await?;
            }
            joined
        })?;
        let changed = joined.was != joined.now;
        Ok((
            Keys {
                pseudonyms: wanted,
                sealer: keys.sealer,
            },
            changed.then_some(joined),
        ))
    }

    /// Whether the database was written with `secret` (its fingerprint is the
    /// one recorded); records nothing.
    pub async fn written_with(&self, secret: &[u8]) -> Result<bool, StoreError> {
        let mine = Pseudonymizer::new(secret).fingerprint();
        let recorded: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(FACT)
                .bind("secret_fingerprint")
                .fetch_optional(pool)
                .await?
        });
        Ok(recorded.as_deref() == Some(mine.as_str()))
    }

    /// Replaces the database's secret `old` by `new` in one transaction: every
    /// stored pseudonym re-keyed, every sealed number sealed again, the new
    /// fingerprint recorded. Nothing changes if anything fails (a sealed number
    /// that does not open stops it). Every `kuma serve` on this database must be
    /// stopped first: one still running would go on with the old keys.
    pub async fn rotate_secret(&self, old: &[u8], new: &[u8]) -> Result<Rotated, StoreError> {
        if old == new {
            return Err(StoreError::Secret(
                "the new secret is the current one".into(),
            ));
        }
        let old_fp = Pseudonymizer::new(old).fingerprint();
        let (old_sealer, new_sealer) = (Sealer::new(old), Sealer::new(new));
        write_tx!(self, |tx| {
            let fp: Option<String> = sqlx::query_scalar(FACT)
                .bind("secret_fingerprint")
                .fetch_optional(&mut *tx)
                .await?;
            if fp.as_deref().is_some_and(|fp| fp != old_fp) {
                return Err(another_secret());
            }
            let earlier: Option<String> = sqlx::query_scalar(FACT)
                .bind(EARLIER)
                .fetch_optional(&mut *tx)
                .await?;
            let mut earlier = earlier_from(earlier, &old_sealer)?;
            earlier.push(old.to_vec());
            let next = Pseudonymizer::with_earlier(&earlier, new);
            let reseal = |sealed: &[u8], caller: &str| -> Result<Vec<u8>, StoreError> {
                let number = old_sealer.open(sealed, caller).map_err(|_| {
                    StoreError::Secret(format!(
                        "a sealed number of {caller} does not open with the current secret: nothing was changed"
                    ))
                })?;
                new_sealer
                    .seal(&number, &next.rekey(caller))
                    .map_err(|e| StoreError::Secret(e.to_string()))
            };
            let mut numbers = 0u64;
            // Sealed numbers first: the old pseudonym is their associated data.
            let waiting: Vec<(i64, String, Vec<u8>)> =
                sqlx::query_as("SELECT id, caller, number FROM callbacks WHERE number IS NOT NULL")
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, caller, sealed) in waiting {
                sqlx::query("UPDATE callbacks SET number = $1 WHERE id = $2")
                    .bind(reseal(&sealed, &caller)?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                numbers += 1;
            }
            let subscribers: Vec<(String, String, Vec<u8>)> =
                sqlx::query_as("SELECT campaign, caller, number FROM subscribers")
                    .fetch_all(&mut *tx)
                    .await?;
            for (campaign, caller, sealed) in subscribers {
                sqlx::query(
                    "UPDATE subscribers SET number = $1 WHERE campaign = $2 AND caller = $3",
                )
                .bind(reseal(&sealed, &caller)?)
                .bind(campaign)
                .bind(caller)
                .execute(&mut *tx)
                .await?;
                numbers += 1;
            }
            // Then every pseudonym, through a table of old and new ones.
            sqlx::query(
                "CREATE TEMPORARY TABLE kuma_rekey (old TEXT PRIMARY KEY, new TEXT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let callers: Vec<String> = sqlx::query_scalar(
                "SELECT caller FROM calls UNION SELECT caller FROM callbacks \
                 UNION SELECT caller FROM subscribers",
            )
            .fetch_all(&mut *tx)
            .await?;
            for caller in &callers {
                sqlx::query("INSERT INTO kuma_rekey (old, new) VALUES ($1, $2)")
                    .bind(caller)
                    .bind(next.rekey(caller))
                    .execute(&mut *tx)
                    .await?;
            }
            for update in REKEY {
                sqlx::query(update).execute(&mut *tx).await?;
            }
            sqlx::query("DROP TABLE kuma_rekey")
                .execute(&mut *tx)
                .await?;
            sqlx::query(SET_FACT)
                .bind("secret_fingerprint")
                .bind(next.fingerprint())
                .execute(&mut *tx)
                .await?;
            sqlx::query(SET_FACT)
                .bind(EARLIER)
                .bind(earlier_sealed(&earlier, &new_sealer)?)
                .execute(&mut *tx)
                .await?;
            Rotated {
                pseudonyms: u64::try_from(callers.len()).unwrap_or(u64::MAX),
                numbers,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    const OLD: &[u8] = b"the first secret, 16+ bytes";
    const NEW: &[u8] = b"the second secret, 16+ bytes";
    const NUMBER: &str = "+22376123456";

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn rotation_rekeys_pseudonyms_and_sealed_numbers_and_refuses_the_old_secret() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::open(&url).await.unwrap();
        let keys = store.keys(OLD).await.unwrap();
        let caller = keys.pseudonyms.pseudonym(NUMBER);
        let sealed = keys.sealer.seal(NUMBER, &caller).unwrap();
        assert!(
            store
                .callbacks()
                .subscribe("c", &caller, &sealed, 10, at("2026-12-01T19:00:00Z"))
                .await
                .unwrap()
        );
        assert!(matches!(
            store.keys(NEW).await,
            Err(StoreError::Secret(m)) if m.contains("another secret")
        ));
        // The wrong "current" secret changes nothing.
        assert!(store.rotate_secret(NEW, OLD).await.is_err());

        let done = store.rotate_secret(OLD, NEW).await.unwrap();
        assert_eq!(
            done,
            Rotated {
                pseudonyms: 1,
                numbers: 1
            }
        );
        assert!(store.keys(OLD).await.is_err(), "the old secret is refused");
        let keys = store.keys(NEW).await.unwrap();
        let now = keys.pseudonyms.pseudonym(NUMBER);
        assert_ne!(now, caller, "a new pseudonym");
        assert_ne!(now, Pseudonymizer::new(NEW).pseudonym(NUMBER));
        // The same caller calling again gets the re-keyed pseudonym, and their
        // sealed number opens under the new secret only.
        assert_eq!(store.callbacks().subscriber_count("c").await.unwrap(), 1);
        assert!(
            store
                .callbacks()
                .unsubscribe("c", &now, at("2026-12-02T19:00:00Z"))
                .await
                .unwrap()
        );
        store
            .callbacks()
            .subscribe(
                "c",
                &now,
                &keys.sealer.seal(NUMBER, &now).unwrap(),
                10,
                at("2026-12-02T19:00:00Z"),
            )
            .await
            .unwrap();

        // A second rotation chains on.
        let third: &[u8] = b"the third secret, 16+ bytes";
        store.rotate_secret(NEW, third).await.unwrap();
        let keys = store.keys(third).await.unwrap();
        let latest = keys.pseudonyms.pseudonym(NUMBER);
        let due = at("2026-12-03T19:00:00Z");
        store
            .callbacks()
            .queue_broadcast("c", due, due, due, &crate::outbound::Policy::default())
            .await
            .unwrap();
        let claimed = store
            .callbacks()
            .claim("w", due, due)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.caller, latest);
        let number = keys
            .sealer
            .open(claimed.sealed.as_deref().unwrap(), &latest)
            .unwrap();
        assert_eq!(number, NUMBER);
        store.close().await;
    }
}
