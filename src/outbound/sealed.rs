//! Phone numbers kuma must keep to call a listener back, sealed.
//!
//! Everywhere else a number becomes a pseudonym at once; a call-back needs the
//! number itself until it is over. It is stored encrypted with XChaCha20-Poly1305
//! (RustCrypto `chacha20poly1305`; 192-bit random nonces, so no nonce bookkeeping
//! across processes), under a key derived from the server secret (`KUMA_SECRET`,
//! the pseudonyms' secret) by HMAC-SHA256 with a label of its own, so the two uses
//! of the secret never share a key. The caller's pseudonym is the associated data:
//! a sealed number copied onto another row does not open.
//!
//! Stored form: 24-byte nonce, then the ciphertext with its 16-byte tag.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The label that makes this key differ from every other key taken from the secret.
const LABEL: &[u8] = b"kuma outbound number sealing key v1";
const NONCE_LEN: usize = 24;

/// Why a sealed number cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error("the stored number cannot be opened (another KUMA_SECRET, or a damaged row)")]
    Open,
}

/// Seals and opens numbers with the key derived from the server secret.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { .. }")
    }
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Sealer {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(LABEL);
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Sealer {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// The number, sealed for the row of the caller with this pseudonym.
    pub fn seal(&self, number: &str, caller: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: number.as_bytes(),
                    aad: caller.as_bytes(),
                },
            )
            .map_err(|_| SealError::Random("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The number back, if it was sealed with this key for this caller.
    pub fn open(&self, sealed: &[u8], caller: &str) -> Result<String, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Open)?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: caller.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_numbers_open_only_with_the_same_secret_and_caller() {
        let s = Sealer::new(b"0123456789abcdef0123");
        let a = s.seal("+22370123456", "c_1").unwrap();
        let b = s.seal("+22370123456", "c_1").unwrap();
        assert_ne!(a, b, "a fresh nonce every time");
        assert!(!a.windows(5).any(|w| w == b"70123"), "no clear digits");
        assert_eq!(s.open(&a, "c_1").unwrap(), "+22370123456");
        assert_eq!(s.open(&a, "c_2"), Err(SealError::Open));
        let other = Sealer::new(b"another secret of 16+ bytes");
        assert_eq!(other.open(&a, "c_1"), Err(SealError::Open));
        let mut damaged = a.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(s.open(&damaged, "c_1"), Err(SealError::Open));
        assert_eq!(s.open(&a[..10], "c_1"), Err(SealError::Open));
    }
}
