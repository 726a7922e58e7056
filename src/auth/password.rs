//! argon2id password hashing, off the async runtime and bounded.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    hash_phc(&argon2(), uuid::Uuid::new_v4().as_bytes(), salt.as_salt()).expect("hashing a random password")
});

thread_local! {
    /// The argon2 memory of a hashing thread, kept from one hash to the next: allocating and
    /// zero-filling 19 MiB for each one cost a login about 6 ms of page faults.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The raw hash of `password` with `argon`, into `out`, in this thread's kept memory.
fn hash_into(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), Block::default());
        }
        // Every block is written before it is read: what an earlier hash left does not matter.
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..params.block_count()])
    })
}

/// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password`.
fn hash_phc(argon: &Argon2<'_>, password: &[u8], salt: Salt<'_>) -> anyhow::Result<String> {
    let params = argon.params().clone();
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hash = Output::init_with(len, |out| {
        hash_into(argon, &params, password, raw_salt, out).map_err(|_| argon2::password_hash::Error::Password)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(salt),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, with the parameters written in it; the
/// comparison is constant-time (`Output`'s equality).
fn verify_phc(password: &[u8], phc: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        anyhow::bail!("stored hash without a salt or a hash");
    };
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    let mut out = vec![0u8; expected.len()];
    hash_into(&argon, &params, password, raw_salt, &mut out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let actual = Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(actual == expected)
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies on its own `concurrency` threads, which run at a lower CPU priority than
/// the rest of Berth (`SCHED_BATCH` at the given nice value): a login storm queues here and takes what CPU the
/// other requests leave, instead of taking every core from them. Having their own threads also
/// bounds the memory the 19 MiB hashes keep in malloc's per-thread arenas. The threads end when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    queue: std::sync::mpsc::Sender<Job>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize, nice: u8) -> Self {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        for n in 0..concurrency.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("berth-hash-{n}"))
                .spawn(move || {
                    if nice > 0 {
                        lower_priority(nice);
                    }
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
            hash_phc(&argon2(), password.expose_secret().as_bytes(), salt.as_salt())
        })
        .await
    }

    /// `phc` is `None` when the login matched no user: a dummy hash is checked instead.
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> anyhow::Result<bool> {
        self.blocking(move || {
            let known = phc.is_some();
            let phc = phc.unwrap_or_else(|| DUMMY_HASH.clone());
            let ok = verify_phc(password.expose_secret().as_bytes(), &phc)?;
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

/// Below the other threads: `nice` under `SCHED_BATCH` (at nice 19, weighted 15 against a normal
/// thread's 1024 when both want the CPU; the whole CPU when nothing else does).
fn lower_priority(nice: u8) {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    // thread-priority maps 0..=99 onto nice 19..=-20 (truncating).
    let value = (99.0 * (1.0 - (f32::from(nice) + 20.0) / 39.0)).round().clamp(0.0, 99.0) as u8;
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let lowered = ThreadPriorityValue::try_from(value)
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
        let h = PasswordHasher::new(1, 9);
        let phc = h.hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery".into(), Some(phc.clone())).await.unwrap());
        assert!(!h.verify("correct horse batterY".into(), Some(phc)).await.unwrap());
        assert!(!h.verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2().hash_password(b"s3cret", &salt).unwrap().to_string();
        let ours = hash_phc(&argon2(), b"s3cret", salt.as_salt()).unwrap();
        assert_eq!(ours, theirs, "the same PHC string for the same salt");
        assert!(verify_phc(b"s3cret", &theirs).unwrap());
        assert!(!verify_phc(b"s3creT", &theirs).unwrap());
        // A hash with other parameters (a stronger one set later) verifies with its own.
        let stronger =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32_768, 3, 1, None).unwrap());
        let phc = hash_phc(&stronger, b"s3cret", salt.as_salt()).unwrap();
        assert!(phc.contains("m=32768,t=3,p=1"), "{phc}");
        assert!(verify_phc(b"s3cret", &phc).unwrap());
        assert!(stronger.verify_password(b"s3cret", &PasswordHash::new(&phc).unwrap()).is_ok());
    }

    #[tokio::test]
    async fn hashing_threads_yield_to_the_rest() {
        let h = PasswordHasher::new(1, 9);
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
