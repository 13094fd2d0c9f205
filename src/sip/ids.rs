//! Tags, branches and call numbers: unique within a run, unguessable by a stranger
//! who has not seen the seed, and reproducible from the seed in tests.
//!
//! A tag (RFC 3261 §19.3) and a branch (§8.1.1.7) need "at least 32 bits of
//! randomness" and global uniqueness, not secrecy; SplitMix64 from a seed the shell
//! draws from the operating system gives both without a dependency.

/// SplitMix64 (Steele, Lea, Flood 2014): fast, and every seed gives a full period.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A dialog tag: 64 random bits in hex.
    pub(crate) fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A branch for a request kuma sends, with the RFC 3261 magic cookie.
    pub(crate) fn branch(&mut self) -> String {
        format!(
            "{}{:016x}",
            crate::sip::message::MAGIC_COOKIE,
            self.next_u64()
        )
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
    fn same_seed_same_tags_different_seed_different_tags() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let ta: Vec<_> = (0..100).map(|_| a.tag()).collect();
        let tb: Vec<_> = (0..100).map(|_| b.tag()).collect();
        let tc: Vec<_> = (0..100).map(|_| c.tag()).collect();
        assert_eq!(ta, tb);
        assert_ne!(ta, tc);
        let unique: std::collections::HashSet<_> = ta.iter().collect();
        assert_eq!(unique.len(), 100);
        assert!(a.branch().starts_with("z9hG4bK"));
    }
}
