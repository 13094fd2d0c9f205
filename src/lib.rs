//! kuma: interactive voice response for community radio campaigns.
//!
//! Listeners phone in after a programme, pick their language, hear short recorded
//! messages, answer poll questions with their keypad, leave a voice message or are
//! put through to a helpline. The library is built around a pure core:
//!
//! - [`campaign`] loads and validates the campaign files broadcasters write;
//! - [`schedule`] says when the programme airs and whether the poll is open;
//! - [`flow`] is one call's state machine: events and time in, actions out, no IO;
//! - [`outbound`] decides which missed calls are called back, and what happens
//!   after each attempt (quotas, retries), and seals the numbers it must keep;
//! - [`store`] keeps calls, answers and recordings (SQLite or PostgreSQL);
//! - [`results`] turns stored counts into the results JSON, tables and CSV;
//! - [`cli`] is the `kuma` command; each channel (the terminal today, SIP and the
//!   voice providers' webhooks later) is a thin adapter around the flow engine.

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
pub mod serve;
pub mod simulator;
pub mod sip;
pub mod store;
pub mod web;
pub mod webhook;
