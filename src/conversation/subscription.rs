//! Subscribing to calls after each broadcast, and leaving: a question with
//! `subscribe = "CHOICE"` keeps the caller's number (sealed) when they answer
//! that choice, and any other answer to it erases them (their number and their
//! waiting calls). The same on every channel.
//!
//! The number is kept only if kuma may call it ([`crate::outbound::may_call`]:
//! inside `[callback] prefixes`, not blocked, not withheld), and the campaign has
//! fewer than `[callback] subscribers_per_campaign` subscribers (checked by the
//! store when the write is applied).

use chrono::{DateTime, Utc};

use crate::campaign::{Campaign, NodeKind};
use crate::outbound::sealed::Sealer;
use crate::outbound::{Caller, Policy};
use crate::store::WriteOp;

/// Whether a question of the campaign subscribes callers to calls after each
/// broadcast (then a channel must be able to seal the caller's number).
pub fn has_subscribe(c: &Campaign) -> bool {
    c.nodes.iter().any(|n| {
        matches!(
            &n.kind,
            NodeKind::Question {
                subscribe: Some(_),
                ..
            }
        )
    })
}

/// Whether `question` is one whose answer subscribes or unsubscribes.
pub fn asks(c: &Campaign, question: &str) -> bool {
    matches!(
        c.node(question).map(|n| &n.kind),
        Some(NodeKind::Question {
            subscribe: Some(_),
            ..
        })
    )
}

/// What an answer does to the caller's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Keep them: this write (their number sealed).
    Subscribe(WriteOp),
    /// They asked, but their number may not be kept (outside `prefixes`,
    /// blocked, withheld, or not sealed): nothing is written.
    Refused(&'static str),
    /// Erase them and cancel their waiting calls.
    Unsubscribe(WriteOp),
}

/// The caller's number sealed to be kept as a subscriber's, or why it may not
/// be kept (the refusal's name). A channel calls it when it has the number: SIP
/// as the call starts (then drops the number), a webhook on the request that
/// carries the answer.
pub fn seal(
    policy: &Policy,
    sealer: &Sealer,
    number: Option<&str>,
    caller: &Caller<'_>,
) -> Result<Vec<u8>, &'static str> {
    let number = number.map(str::trim).ok_or("withheld_number")?;
    crate::outbound::may_call(policy, number, caller).map_err(|r| r.as_str())?;
    sealer
        .seal(number, caller.pseudonym)
        .map_err(|_| "seal_failed")
}

/// The caller's number sealed as a call that holds it from start to end (SIP,
/// the terminal simulator) starts, so that the number itself can be dropped at
/// once: only when the campaign has a question with `subscribe`, and only a
/// number kuma could call (not a withheld or made-up caller ID).
pub fn seal_at_start(
    c: &Campaign,
    policy: &Policy,
    sealer: &Sealer,
    number: &str,
    caller: &Caller<'_>,
) -> Result<Vec<u8>, &'static str> {
    if !has_subscribe(c) {
        return Err("no_subscribe_question");
    }
    let number = crate::outbound::callable(number.trim()).then_some(number);
    seal(policy, sealer, number, caller)
}

/// What answering `question` with `choice` does: `None` when the question has
/// no `subscribe`. `sealed` gives the caller's number sealed by [`seal`]; it is
/// asked only when they subscribe.
pub fn on_answer(
    c: &Campaign,
    question: &str,
    choice: &str,
    caller: &str,
    sealed: impl FnOnce() -> Result<Vec<u8>, &'static str>,
    policy: &Policy,
    at: DateTime<Utc>,
) -> Option<Change> {
    let Some(NodeKind::Question {
        subscribe: Some(yes),
        ..
    }) = c.node(question).map(|n| &n.kind)
    else {
        return None;
    };
    if choice != yes {
        return Some(Change::Unsubscribe(WriteOp::Unsubscribe {
            campaign: c.id.clone(),
            caller: caller.to_owned(),
            at,
        }));
    }
    Some(match sealed() {
        Ok(sealed) => Change::Subscribe(WriteOp::Subscribe {
            campaign: c.id.clone(),
            caller: caller.to_owned(),
            sealed: hex::encode(sealed),
            at,
            limit: Some(policy.subscribers_per_campaign),
        }),
        Err(reason) => Change::Refused(reason),
    })
}

/// The log line of a change (pseudonym only, never the number).
pub fn log(change: &Change, caller: &str) {
    match change {
        Change::Subscribe(_) => {
            tracing::info!(%caller, "subscribed to calls after each broadcast")
        }
        Change::Refused(reason) => {
            tracing::info!(%caller, reason, "cannot subscribe: the number is not kept")
        }
        Change::Unsubscribe(_) => {
            tracing::info!(%caller, "unsubscribed (number erased, if kept)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of enough bytes";

    fn campaign() -> Campaign {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("campaigns/stop-trafficking-mali.toml");
        let mut c = crate::campaign::load_campaign(&file).unwrap();
        for n in &mut c.nodes {
            if let NodeKind::Question { subscribe, .. } = &mut n.kind
                && n.id == "q_would_report"
            {
                *subscribe = Some("yes".into());
            }
        }
        c
    }

    fn at() -> DateTime<Utc> {
        "2026-12-01T19:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_subscribe_choice_seals_the_number_any_other_erases_it() {
        let c = campaign();
        assert!(has_subscribe(&c));
        assert!(asks(&c, "q_would_report") && !asks(&c, "q_gender"));
        let sealer = Sealer::new(SECRET);
        let policy = Policy {
            prefixes: Some(vec!["+22376".into()]),
            country_code: Some("223".into()),
            subscribers_per_campaign: 7,
            ..Policy::default()
        };
        let on = |choice: &str, number: Option<&str>| {
            let sealed = || seal(&policy, &sealer, number, &Caller::new("c_x"));
            on_answer(&c, "q_would_report", choice, "c_x", sealed, &policy, at())
        };
        match on("yes", Some("76123456")) {
            Some(Change::Subscribe(WriteOp::Subscribe { sealed, limit, .. })) => {
                let sealed = hex::decode(sealed).unwrap();
                assert_eq!(sealer.open(&sealed, "c_x").unwrap(), "76123456");
                assert_eq!(limit, Some(7));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            on("no", Some("76123456")),
            Some(Change::Unsubscribe(_))
        ));
        assert!(matches!(on("no", None), Some(Change::Unsubscribe(_))));
        assert_eq!(
            on("yes", Some("+447700900123")),
            Some(Change::Refused("number_not_allowed"))
        );
        assert_eq!(on("yes", None), Some(Change::Refused("withheld_number")));
        assert_eq!(
            on("yes", Some("anonymous")),
            Some(Change::Refused("withheld_number"))
        );
        // A question without `subscribe` changes nothing.
        assert_eq!(
            on_answer(
                &c,
                "q_gender",
                "woman",
                "c_x",
                || Ok(Vec::new()),
                &policy,
                at()
            ),
            None
        );
    }
}
