//! Tags, branches and Call-IDs: unique, and unguessable even by someone who has
//! seen every one kuma sent before.
//!
//! Secrecy matters, not only uniqueness. RFC 3261 asks for "at least 32 bits of
//! randomness" in a tag (§19.3) and a unique branch (§8.1.1.7), but whoever can
//! guess them can act inside kuma's calls: a dialog is Call-ID plus the two tags, so
//! a guessed tag lets a stranger send a BYE, a re-INVITE or a NOTIFY that kuma takes
//! for the caller's; and a guessed branch lets him answer kuma's own INVITE before
//! the trunk does (a forged 200 takes the call-back, a forged 404 ends it). Every
//! identifier kuma sends is therefore drawn from a cryptographically secure
//! generator: ChaCha12 ([`rand::rngs::StdRng`]) keyed with 256 bits from the
//! operating system, so one observed tag tells nothing about the next. (The
//! generator before this one, SplitMix64, gave its whole state away in a single
//! output.)
//!
//! [`Ids::seeded`] makes the same sequence from a number, for tests, fuzzing and
//! benchmarks that need to be reproducible; production uses [`Ids::from_os`].

use rand::rngs::{StdRng, SysError, SysRng};
use rand::{Rng, SeedableRng};

/// The source of every identifier an endpoint makes.
#[derive(Debug)]
pub(crate) struct Ids(StdRng);

impl Ids {
    /// Keyed with fresh entropy from the operating system: unpredictable.
    pub(crate) fn from_os() -> Result<Self, SysError> {
        StdRng::try_from_rng(&mut SysRng).map(Ids)
    }

    /// Reproducible from `seed`, and so predictable by anyone who knows it: for
    /// tests, fuzzing and benchmarks only.
    pub(crate) fn seeded(seed: u64) -> Self {
        Ids(StdRng::seed_from_u64(seed))
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A tag (From of a request kuma starts, To of its responses): 64 random bits
    /// in hex.
    pub(crate) fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A branch for a request kuma sends: the RFC 3261 magic cookie and 64 random
    /// bits.
    pub(crate) fn branch(&mut self) -> String {
        format!(
            "{}{:016x}",
            crate::sip::message::MAGIC_COOKIE,
            self.next_u64()
        )
    }

    /// The local part of a Call-ID (§8.1.1.4: unique over space and time, so it
    /// must survive restarts too): 128 random bits in hex.
    pub(crate) fn call_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// A number in `0..n` (n > 0), for Retry-After.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_the_os_differ_between_endpoints_and_never_repeat() {
        let (mut a, mut b) = (Ids::from_os().unwrap(), Ids::from_os().unwrap());
        let ta: Vec<_> = (0..1000).map(|_| a.tag()).collect();
        let tb: Vec<_> = (0..1000).map(|_| b.tag()).collect();
        let all: std::collections::HashSet<_> = ta.iter().chain(&tb).collect();
        assert_eq!(all.len(), 2000);
        assert!(ta.iter().all(|t| t.len() == 16));
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_eq!(a.call_id().len(), 32);
    }

    #[test]
    fn a_seed_gives_the_same_sequence_for_reproducible_tests() {
        let (mut a, mut b, mut c) = (Ids::seeded(7), Ids::seeded(7), Ids::seeded(8));
        let ta: Vec<_> = (0..100).map(|_| a.tag()).collect();
        let tb: Vec<_> = (0..100).map(|_| b.tag()).collect();
        let tc: Vec<_> = (0..100).map(|_| c.tag()).collect();
        assert_eq!(ta, tb);
        assert_ne!(ta, tc);
    }
}
