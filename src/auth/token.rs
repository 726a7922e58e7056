//! Opaque secrets: random, prefixed so a leaked one is recognisable (and scannable), and kept
//! only as SHA-256. Every character is one that form-URL-encoding leaves unchanged
//! (`A-Z a-z 0-9 - _`), so OAuth2 clients that skip RFC 6749 §2.3.1's encoding still work.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Client ids: public, 128 random bits.
pub const CLIENT_ID: &str = "brc_";
/// Client secrets: 256 random bits.
pub const CLIENT_SECRET: &str = "brs_";
/// Access tokens (bearer).
pub const ACCESS: &str = "brt_";
/// Refresh tokens.
pub const REFRESH: &str = "brr_";

pub fn generate(prefix: &str, random_bytes: usize) -> String {
    let mut buf = vec![0u8; random_bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Compares a presented secret with a stored hash in constant time.
pub fn matches(presented: &str, stored_hash: &[u8]) -> bool {
    hash(presented).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_survive_form_encoding() {
        let t = generate(CLIENT_SECRET, 32);
        assert!(t.starts_with("brs_"));
        assert_eq!(t.len(), 4 + 43, "256 bits in base64url");
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let encoded: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
        assert_eq!(encoded, t);
        assert_ne!(generate(ACCESS, 32), generate(ACCESS, 32));
    }

    #[test]
    fn matching_is_by_hash() {
        let t = generate(ACCESS, 32);
        assert!(matches(&t, &hash(&t)));
        assert!(!matches("brt_other", &hash(&t)));
    }
}
