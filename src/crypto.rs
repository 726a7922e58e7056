//! The master key: encrypts the secrets Berth must be able to read back (a store's database
//! passwords, later CA keys), with XChaCha20-Poly1305. Each ciphertext is bound to the row it
//! belongs to by associated data, so it cannot be moved to another row. It also gives the keys of
//! other purposes ([`MasterKey::derive`]), so that no other use of it can weaken the encryption.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct MasterKey {
    aead: XChaCha20Poly1305,
    /// HMAC-SHA256 keyed by the master key: the derivation of the keys of other purposes.
    derivation: Hmac<Sha256>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A key given as 32 bytes in base64 (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(text.trim()).context("BERTH_MASTER_KEY is not base64")?;
        if bytes.len() != 32 {
            bail!(
                "BERTH_MASTER_KEY must be 32 bytes (base64 of `openssl rand -base64 32`), not {}",
                bytes.len()
            );
        }
        Ok(Self::from_bytes(&bytes))
    }

    pub fn generate() -> (Self, String) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        (Self::from_bytes(&key), STANDARD.encode(key))
    }

    fn from_bytes(key: &[u8]) -> Self {
        Self {
            aead: XChaCha20Poly1305::new_from_slice(key).expect("32-byte key"),
            derivation: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// The key of one `purpose` (a fixed label naming it and its version): HMAC-SHA256 of the
    /// label under the master key, the same in every instance that shares the master key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.derivation.clone();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The embedded default's key: read from `path`, or generated there (mode 0600) on first run.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                bail!("{} is readable by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777);
            }
            return Self::from_base64(&std::fs::read_to_string(path)?);
        }
        let (key, text) = Self::generate();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(key)
    }

    pub fn encrypt(&self, plaintext: &[u8], bound_to: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .aead
            .encrypt(&nonce, Payload { msg: plaintext, aad: bound_to })
            .expect("encryption cannot fail");
        [nonce.as_slice(), &ct].concat()
    }

    pub fn decrypt(&self, blob: &[u8], bound_to: &[u8]) -> anyhow::Result<Vec<u8>> {
        if blob.len() < NONCE_LEN {
            bail!("ciphertext too short");
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: bound_to })
            .map_err(|_| anyhow::anyhow!("cannot decrypt: wrong master key, or the data was altered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_its_row() {
        let (key, text) = MasterKey::generate();
        let blob = key.encrypt(b"secret", b"row-1");
        assert_eq!(key.decrypt(&blob, b"row-1").unwrap(), b"secret");
        assert!(key.decrypt(&blob, b"row-2").is_err(), "moved to another row");
        let again = MasterKey::from_base64(&text).unwrap();
        assert_eq!(again.decrypt(&blob, b"row-1").unwrap(), b"secret");
        let (other, _) = MasterKey::generate();
        assert!(other.decrypt(&blob, b"row-1").is_err());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_follow_the_master_key() {
        let (key, text) = MasterKey::generate();
        let again = MasterKey::from_base64(&text).unwrap();
        assert_eq!(key.derive("a v1"), again.derive("a v1"));
        assert_ne!(key.derive("a v1"), key.derive("b v1"));
        assert_ne!(key.derive("a v1"), MasterKey::generate().0.derive("a v1"));
    }

    #[test]
    fn the_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(b.decrypt(&a.encrypt(b"x", b""), b"").unwrap(), b"x");
    }
}
