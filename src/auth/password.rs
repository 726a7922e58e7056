//! argon2id password hashing, off the async runtime and bounded.

use std::sync::{Arc, LazyLock};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

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

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies on its own `concurrency` threads, which run at a lower CPU priority than
/// the rest of Berth (`SCHED_BATCH`, nice 10): a login storm queues here and takes what CPU the
/// other requests leave, instead of taking every core from them. Having their own threads also
/// bounds the memory the 19 MiB hashes keep in malloc's per-thread arenas. The threads end when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    queue: std::sync::mpsc::Sender<Job>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        for n in 0..concurrency.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("berth-hash-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // One thread waits on the queue at a time; the others wait for the lock.
                        let next = jobs.lock().map_err(drop).and_then(|rx| rx.recv().map_err(drop));
                        match next {
                            Ok(job) => job(),
                            Err(()) => return,
                        }
                    }
                })
                .expect("starting a password hashing thread");
        }
        Self { queue }
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
        let (done, result) = tokio::sync::oneshot::channel();
        self.queue
            .send(Box::new(move || {
                let _ = done.send(f());
            }))
            .map_err(|_| anyhow::anyhow!("the hashing threads are gone"))?;
        result.await.context("a hashing thread panicked")?
    }
}

/// Below the other threads: nice 10 under `SCHED_BATCH` (weighted about a tenth of a normal
/// thread when both want the CPU; the whole CPU when nothing else does).
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    // thread-priority maps 0..=99 onto nice 19..=-20: 23 is nice 9.
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let lowered = ThreadPriorityValue::try_from(23u8)
        .map_err(|e| format!("{e:?}"))
        .map(ThreadPriority::Crossplatform)
        .and_then(|p| {
            set_thread_priority_and_policy(thread_native_id(), p, policy).map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = lowered {
        tracing::warn!(error = %e, "could not lower the priority of a password hashing thread");
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

    #[tokio::test]
    async fn hashing_threads_yield_to_the_rest() {
        let h = PasswordHasher::new(1);
        let (policy, nice) = h
            .blocking(|| {
                let policy =
                    thread_priority::thread_schedule_policy().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                // /proc/thread-self/stat: the 19th field is the nice value.
                let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
                let after_name = &stat[stat.rfind(')').unwrap() + 2..];
                let nice: i32 = after_name.split(' ').nth(16).unwrap().parse()?;
                Ok((policy, nice))
            })
            .await
            .unwrap();
        assert_eq!(
            policy,
            thread_priority::ThreadSchedulePolicy::Normal(thread_priority::NormalThreadSchedulePolicy::Batch)
        );
        assert!(nice >= 9, "nice {nice}");
        // Nothing else in the process is lowered.
        let here = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &here[here.rfind(')').unwrap() + 2..];
        assert_eq!(after_name.split(' ').nth(16), Some("0"));
    }
}
