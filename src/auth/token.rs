//! Opaque secrets: random, prefixed so a leaked one is recognisable (and scannable), and kept
//! only as SHA-256. Every character is one that form-URL-encoding leaves unchanged
//! (`A-Z a-z 0-9 - _`), so OAuth2 clients that skip RFC 6749 §2.3.1's encoding still work.
//!
//! Each one carries a tag, 128 bits of HMAC-SHA256 of its prefix and random part under a key
//! derived from the master key: one that Berth did not make is refused without a database
//! lookup, so a flood of made-up ones costs no connection from the pool. Those made before the
//! tags (shorter: the random part alone) are still looked up, until they expire.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One kind of secret: its prefix, and how many random bytes follow it (before the tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub prefix: &'static str,
    random_bytes: usize,
}

/// Client ids: public, 128 random bits.
pub const CLIENT_ID: Kind = Kind { prefix: "brc_", random_bytes: 16 };
/// Client secrets: 256 random bits.
pub const CLIENT_SECRET: Kind = Kind { prefix: "brs_", random_bytes: 32 };
/// Access tokens (bearer).
pub const ACCESS: Kind = Kind { prefix: "brt_", random_bytes: 32 };
/// Refresh tokens.
pub const REFRESH: Kind = Kind { prefix: "brr_", random_bytes: 32 };

/// The bytes of HMAC-SHA256 kept as the tag.
const TAG_LEN: usize = 16;

/// What the tag key is derived from the master key for ([`crate::crypto::MasterKey::derive`]).
pub const TAG_KEY_PURPOSE: &str = "berth token tag v1";

/// The key that tags the secrets Berth makes, and checks the tags of those presented to it.
#[derive(Clone)]
pub struct TagKey(Hmac<Sha256>);

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagKey(<redacted>)")
    }
}

impl TagKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC takes a key of any length"))
    }

    /// A new secret of `kind`: its prefix, then base64url of its random bytes and their tag.
    pub fn generate(&self, kind: Kind) -> String {
        let mut buf = vec![0u8; kind.random_bytes + TAG_LEN];
        let (random, tag) = buf.split_at_mut(kind.random_bytes);
        rand::rngs::OsRng.fill_bytes(random);
        tag.copy_from_slice(&self.mac(kind, random).finalize().into_bytes()[..TAG_LEN]);
        format!("{}{}", kind.prefix, URL_SAFE_NO_PAD.encode(buf))
    }

    /// Whether `presented` may be a secret of `kind` that Berth made, and so is worth looking
    /// up: its tag is right (checked in constant time), or it has the length of one made before
    /// the tags. Anything else is made up.
    pub fn may_be_genuine(&self, kind: Kind, presented: &str) -> bool {
        let Some(body) = presented.strip_prefix(kind.prefix) else { return false };
        if body.len() == encoded_len(kind.random_bytes) {
            return body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        }
        if body.len() != encoded_len(kind.random_bytes + TAG_LEN) {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(body) else { return false };
        let (random, tag) = raw.split_at(kind.random_bytes);
        self.mac(kind, random).verify_truncated_left(tag).is_ok()
    }

    fn mac(&self, kind: Kind, random: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(kind.prefix.as_bytes());
        mac.update(random);
        mac
    }
}

/// The length of `bytes` in unpadded base64.
const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
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

    fn key() -> TagKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        TagKey::new(&k)
    }

    /// A secret as Berth made them before the tags.
    fn untagged(kind: Kind) -> String {
        let mut buf = vec![0u8; kind.random_bytes];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        format!("{}{}", kind.prefix, URL_SAFE_NO_PAD.encode(buf))
    }

    #[test]
    fn tokens_are_prefixed_long_and_survive_form_encoding() {
        let key = key();
        let t = key.generate(CLIENT_SECRET);
        assert!(t.starts_with("brs_"));
        assert_eq!(t.len(), 4 + 64, "256 bits and a 128-bit tag in base64url");
        assert_eq!(key.generate(CLIENT_ID).len(), 4 + 43, "128 bits and the tag");
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let encoded: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
        assert_eq!(encoded, t);
        assert_ne!(key.generate(ACCESS), key.generate(ACCESS));
    }

    #[test]
    fn a_tag_vouches_for_its_kind_under_its_key_only() {
        let key = key();
        for kind in [CLIENT_ID, CLIENT_SECRET, ACCESS, REFRESH] {
            let t = key.generate(kind);
            assert!(key.may_be_genuine(kind, &t), "{t}");
            assert!(!key.may_be_genuine(kind, &t[..t.len() - 1]), "shortened");
            assert!(!self::key().may_be_genuine(kind, &t), "another master key's");
        }
        let access = key.generate(ACCESS);
        assert!(!key.may_be_genuine(REFRESH, &access.replacen("brt_", "brr_", 1)), "bound to its prefix");
        assert!(!key.may_be_genuine(ACCESS, "brt_made_up_1"));
        assert!(!key.may_be_genuine(ACCESS, ""));
        assert!(!key.may_be_genuine(ACCESS, &format!("{access}x")));
        assert!(!key.may_be_genuine(ACCESS, &format!("{}!", &access[..access.len() - 1])));
    }

    #[test]
    fn any_flipped_character_is_refused() {
        let key = key();
        for kind in [CLIENT_ID, ACCESS] {
            let t = key.generate(kind);
            for i in 4..t.len() {
                let mut flipped = t.clone().into_bytes();
                flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
                let flipped = String::from_utf8(flipped).unwrap();
                // Also the last character of a client id, whose 2 low bits encode nothing: the
                // decoding refuses them set.
                assert!(!key.may_be_genuine(kind, &flipped), "character {i} of {t}: {flipped}");
            }
        }
    }

    #[test]
    fn secrets_made_before_the_tags_are_still_looked_up() {
        let key = key();
        for kind in [CLIENT_ID, CLIENT_SECRET, ACCESS, REFRESH] {
            let old = untagged(kind);
            assert!(key.may_be_genuine(kind, &old), "{old}");
        }
        assert_eq!(untagged(ACCESS).len(), 4 + 43);
        assert!(!key.may_be_genuine(ACCESS, &format!("brt_{}", "!".repeat(43))));
    }

    #[test]
    fn matching_is_by_hash() {
        let t = key().generate(ACCESS);
        assert!(matches(&t, &hash(&t)));
        assert!(!matches("brt_other", &hash(&t)));
    }
}
