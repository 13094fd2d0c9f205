//! The call runtime: what a call does around the flow engine, the same whichever
//! channel carries it (SIP in `crate::serve::call`, the providers' webhooks in
//! `crate::serve::webhook_routes`). Each channel keeps only what is its own (media,
//! the provider's XML); the rules of a call's life that are not the engine's
//! live here, so that they cannot drift apart from one channel to another.
//!
//! - [`start`]: a call's row and the broadcast whose poll it answers;
//! - [`runtime`]: the answered call, sans-IO: the engine fed with the call's
//!   clock, its actions turned into store writes, prompts, recordings (and
//!   where they are written), transfers and the hang-up, in order;
//! - [`subscription`]: subscribing and unsubscribing on an answer;
//! - [`clock`]: one monotonic clock per call;
//! - [`metrics`]: what is counted of a call, under one set of names;
//! - [`writes`]: performing the store writes a call asks for (counted, a lost
//!   node visit forgiven), through the spool or straight to the store;
//! - [`studio`]: the studio line (a broadcaster records prompts by phone),
//!   sans-IO like [`runtime`] and driven by the same SIP shell.
//!
//! The SIP shell and the terminal simulator (`crate::simulator`) drive a whole
//! call through [`runtime::Conversation`]; a webhook call lives one HTTP
//! request at a time (its engine state is stored between requests), so the
//! webhook shell uses the same rules piece by piece ([`start`],
//! [`subscription`], [`writes`]).

pub mod clock;
pub mod metrics;
pub mod runtime;
pub mod start;
pub mod studio;
pub mod subscription;
pub mod writes;
