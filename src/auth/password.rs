//! argon2id password hashing, off the async runtime and bounded.

use std::sync::{Arc, LazyLock};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// OWASP's first recommended argon2id setting: 19 MiB, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

pub fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The hash checked when the login names nobody, so that an unknown login costs the same time
/// as a wrong password and the two cannot be told apart.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
        .expect("hashing a random password")
        .to_string()
});

/// Hashes and verifies on the blocking pool, at most `concurrency` at a time: a login storm
/// queues here instead of taking every core from the requests beside it.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
        })
        .await
    }

    /// `phc` is `None` when the login matched no user: a dummy hash is checked instead.
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> anyhow::Result<bool> {
        self.blocking(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| DUMMY_HASH.clone());
            let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            let ok = argon2().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
            Ok(known && ok)
        })
        .await
    }

    /// Warms the dummy hash so the first unknown-login attempt is not slower than the rest.
    pub async fn warm_up(&self) {
        let _ = self.blocking(|| Ok(DUMMY_HASH.len())).await;
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        tokio::task::spawn_blocking(f).await.context("hashing task")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_and_verify() {
        let h = PasswordHasher::new(1);
        let phc = h.hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery".into(), Some(phc.clone())).await.unwrap());
        assert!(!h.verify("correct horse batterY".into(), Some(phc)).await.unwrap());
        assert!(!h.verify("anything at all".into(), None).await.unwrap());
    }
}
