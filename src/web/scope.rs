//! Tokens limited to some campaigns (`kuma token create … --campaign ID`): one
//! kuma at a country office may serve several stations, and each station's
//! token reaches its own campaigns only, in every page and API route,
//! including the live board and the exports.
//!
//! Checked in one place, where a request's token is looked up (the [`super::Auth`]
//! and page extractors), from the request's path: a campaign route
//! (`/api/campaigns/{id}/…`, `/campaigns/{id}/…`) or a voice message
//! (`/api/recordings/{rid}…`, by the message's campaign) outside the token's
//! campaigns is a 404, exactly as for a campaign that does not exist, so a
//! token does not even learn which other campaigns there are. Lists (`GET
//! /api/campaigns`, the campaign page) show only the token's campaigns. A
//! limited token cannot create campaigns or manage tokens (403): either would
//! reach past its limits. The prompt audio under `/audio/` needs no token and
//! is not limited (prompts are broadcast content).

use axum::http::Method;

use super::{ApiError, ApiState};

/// The campaigns a token reaches: all, or these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn new(campaigns: Vec<String>) -> Scope {
        Scope(campaigns)
    }

    /// Whether a campaign is within the token's reach.
    pub fn allows(&self, id: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c == id)
    }

    pub fn is_limited(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether the request may go on, from its method and path (see the
    /// module doc). A path segment is compared as sent: an encoded form of an
    /// allowed id is refused too, never the other way round.
    pub async fn check(&self, st: &ApiState, method: &Method, path: &str) -> Result<(), ApiError> {
        if !self.is_limited() {
            return Ok(());
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let not_found = |id: &str| ApiError::NotFound(format!("unknown campaign `{id}`"));
        match segments.as_slice() {
            ["api", "campaigns"] | ["api", "campaigns", ""] if *method != Method::GET => {
                Err(ApiError::Forbidden(
                    "a token limited to some campaigns cannot create campaigns".into(),
                ))
            }
            ["api", "campaigns", id, ..] | ["campaigns", id, ..] if !id.is_empty() => {
                if self.allows(id) {
                    Ok(())
                } else {
                    Err(not_found(id))
                }
            }
            ["api", "recordings", rid, ..] => {
                let recording = match rid.parse::<i64>() {
                    Ok(rid) => st
                        .shared
                        .store
                        .recording(rid)
                        .await
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                    Err(_) => None,
                };
                match recording {
                    Some(r) if self.allows(&r.campaign) => Ok(()),
                    _ => Err(ApiError::NotFound(format!("no recording {rid}"))),
                }
            }
            ["api", "tokens", ..] => Err(ApiError::Forbidden(
                "a token limited to some campaigns cannot manage tokens".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The campaigns of a token (by its hash).
pub(crate) async fn of(st: &ApiState, token_hash: &str) -> Result<Scope, ApiError> {
    st.shared
        .store
        .tokens()
        .campaigns(token_hash)
        .await
        .map(Scope::new)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_scope_reaches_everything() {
        assert!(Scope::default().allows("x"));
        let s = Scope::new(vec!["a".into(), "b".into()]);
        assert!(s.allows("a") && s.allows("b") && !s.allows("c"));
        assert!(s.is_limited() && !Scope::default().is_limited());
    }
}
