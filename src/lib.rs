//! kuma: interactive voice response for community radio campaigns.
//!
//! Listeners phone in after a programme, pick their language, hear short recorded
//! messages, answer poll questions with their keypad, leave a voice message or are
//! put through to a helpline. The layers, from the bottom up (ARCHITECTURE.md
//! says who may import whom, and `tests/layering.rs` checks it):
//!
//! - the pure core: [`duration`], [`secret`] (the secret and the callers'
//!   pseudonyms), [`campaign`] (the campaign files), [`schedule`]
//!   (when the programme airs, whether the poll is open), [`flow`] (one call's
//!   state machine: events and time in, actions out, no IO), [`outbound`] (the
//!   call-back rules), [`audio`] (prompts and keys in audio);
//! - protocol machines, sans-IO: [`rtp`], [`sip`], [`webhook`] (the providers'
//!   dialects);
//! - storage: [`store`] (SQLite or PostgreSQL), [`catalog`] (the loaded
//!   campaigns), [`results`] (the results JSON, tables and CSV);
//! - the call runtime: [`conversation`], what a call does around the engine on
//!   every channel;
//! - shells: [`serve`] (SIP, RTP, the webhooks, the dialer), [`web`] (pages and
//!   API), [`simulator`], [`cli`] (the `kuma` command).

pub mod audio;
pub mod campaign;
pub mod catalog;
pub mod cli;
pub mod conversation;
pub mod duration;
pub mod flow;
pub mod outbound;
pub mod results;
pub mod rtp;
pub mod schedule;
pub mod secret;
pub mod serve;
pub mod simulator;
pub mod sip;
pub mod store;
pub mod web;
pub mod webhook;
