//! The call runtime: what a call does around the flow engine, the same whichever
//! channel carries it (SIP in `crate::serve::call`, the providers' webhooks in
//! `crate::serve::webhook`). Each channel keeps only what is its own (media,
//! the provider's XML); the rules of a call's life that are not the engine's
//! live here, so that they cannot drift apart from one channel to another.
//!
//! So far: the start of a call ([`start`]), subscribing and unsubscribing
//! ([`subscription`]), the call's clock ([`clock`]) and what is counted of a
//! call ([`metrics`]).

pub mod clock;
pub mod metrics;
pub mod start;
pub mod subscription;
