//! API bearer tokens: who may read what over HTTP (`kuma token`, `crate::web`).
//!
//! Only a token's SHA-256 is stored (hex, in `tokens.hash`); the token itself is
//! printed once by `kuma token create` and never kept, so a copy of the database
//! does not hand out access. A revoked token stays in the table (with
//! `revoked_at`) so that `kuma token list` shows its history. Roles are stored as
//! their names; `crate::web::Role` gives them meaning.

use chrono::{DateTime, Utc};

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
}

const INSERT_TOKEN: &str = "\
    INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (name) DO NOTHING";
const LIST_TOKENS: &str = "\
    SELECT name, role, created_at, revoked_at, hash FROM tokens ORDER BY created_at, id";
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
        let rows: Vec<(String, String, i64, Option<i64>, String)> =
            with_pool!(self.store, |pool| {
                sqlx::query_as(LIST_TOKENS).fetch_all(pool).await?
            });
        let limits: Vec<(String, String)> = with_pool!(self.store, |pool| {
            sqlx::query_as(ALL_TOKEN_CAMPAIGNS).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(name, role, created, revoked, hash)| {
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
}
