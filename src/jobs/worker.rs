//! Workers: claim a job, run its remaining steps under a heartbeated lease, and record the
//! outcome. Several workers, in one process or many, share the queue; each job runs in one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{JobEnv, Step, kinds};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::JobStatus;

/// How long a claim lasts without a heartbeat: a worker that dies loses its job after this.
pub const LEASE: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(500);
fn lease() -> time::Duration {
    time::Duration::try_from(LEASE).expect("lease fits")
}

/// Wait before retry `attempt` (1-based): 2 s, 4 s, 8 s … at most a minute.
pub fn backoff(attempt: i32) -> time::Duration {
    time::Duration::seconds(2i64.saturating_pow(attempt.clamp(1, 6) as u32).min(60))
}

pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    process_id: String,
    db: sqlx::PgPool,
}

impl Workers {
    /// Starts `count` workers, registered under one process id, woken early by `wake`.
    pub async fn start(env: JobEnv, count: usize, wake: Arc<Notify>) -> anyhow::Result<Self> {
        let hostname =
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let process_id =
            format!("{hostname}:{}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        db::jobs::register_worker(
            &env.db,
            &process_id,
            &hostname,
            std::process::id() as i32,
            env.clock.now(),
        )
        .await?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for n in 0..count.max(1) {
            let worker = format!("{process_id}/{n}");
            tasks.spawn(run_worker(env.clone(), worker, wake.clone(), stopped.clone()));
        }
        tasks.spawn(heartbeat_process(env.clone(), process_id.clone(), stopped));
        Ok(Self { stop, tasks, process_id, db: env.db })
    }

    /// Stops claiming; a job in progress finishes its current step and goes back to the queue.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let _ = db::jobs::remove_worker(&self.db, &self.process_id).await;
    }
}

async fn heartbeat_process(env: JobEnv, id: String, mut stopped: watch::Receiver<bool>) {
    let hostname = id.split(':').next().unwrap_or_default().to_owned();
    loop {
        if let Err(e) =
            db::jobs::register_worker(&env.db, &id, &hostname, std::process::id() as i32, env.clock.now())
                .await
        {
            tracing::warn!(error = %e, "worker heartbeat");
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT / 2) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn run_worker(env: JobEnv, worker: String, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let now = env.clock.now();
        match db::jobs::claim(&env.db, &worker, now, now + lease()).await {
            Ok(Some(job)) => run_job(&env, &worker, job, &stopped).await,
            Ok(None) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stopped.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a job");
                tokio::time::sleep(POLL * 4).await;
            }
        }
    }
}

async fn log(env: &JobEnv, job: &JobRow, level: &str, message: &str) {
    if !kinds::of(&job.kind).logged() {
        return;
    }
    if let Err(e) = db::jobs::log(&env.db, job.id, level, message, env.clock.now()).await {
        tracing::warn!(job = %job.id, error = %e, "writing a job log line");
    }
}

async fn run_job(env: &JobEnv, worker: &str, job: JobRow, stopped: &watch::Receiver<bool>) {
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
    let _enter = span.enter();
    if job.step > 0 || job.attempts > 1 {
        log(
            env,
            &job,
            "info",
            &format!("resuming at step {} of {} (attempt {})", job.step + 1, job.steps.len(), job.attempts),
        )
        .await;
    }
    let keeper = tokio::spawn({
        let (env, worker, id) = (env.clone(), worker.to_owned(), job.id);
        async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let until = env.clock.now() + lease();
                match db::jobs::heartbeat(&env.db, id, &worker, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, "job heartbeat"),
                }
            }
        }
    });
    let outcome = run_steps(env, worker, &job, stopped).await;
    keeper.abort();
    let now = env.clock.now();
    let result = match outcome {
        Outcome::Done => {
            log(env, &job, "info", "succeeded").await;
            db::jobs::finish(&env.db, job.id, worker, JobStatus::Succeeded, None, now).await.map(drop)
        }
        Outcome::LostLease => {
            tracing::warn!("lost the lease; another worker has the job");
            Ok(())
        }
        Outcome::Paused => {
            db::jobs::retry_later(&env.db, job.id, worker, now, "paused by shutdown", now).await.map(drop)
        }
        Outcome::Failed(e) => {
            let message = format!("{e:#}");
            if job.attempts >= job.max_attempts || e.downcast_ref::<super::Abort>().is_some() {
                log(env, &job, "error", &format!("failed for good: {message}")).await;
                if let Err(e) = kinds::of(&job.kind).on_final_failure(env, &job).await {
                    tracing::error!(error = %e, "cleaning up after a failed job");
                }
                db::jobs::finish(&env.db, job.id, worker, JobStatus::Failed, Some(&message), now)
                    .await
                    .map(drop)
            } else {
                let wait = backoff(job.attempts);
                log(
                    env,
                    &job,
                    "warn",
                    &format!("attempt {} failed, retrying in {wait}: {message}", job.attempts),
                )
                .await;
                db::jobs::retry_later(&env.db, job.id, worker, now + wait, &message, now).await.map(drop)
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "recording a job's outcome");
    }
}

enum Outcome {
    Done,
    LostLease,
    Paused,
    Failed(anyhow::Error),
}

async fn run_steps(env: &JobEnv, worker: &str, job: &JobRow, stopped: &watch::Receiver<bool>) -> Outcome {
    let start = usize::try_from(job.step).unwrap_or(0);
    // The kind runs each step: the worker only walks them, in order, under the lease.
    let kind = kinds::of(&job.kind);
    for (i, step) in job.steps.iter().enumerate().skip(start) {
        if *stopped.borrow() {
            return Outcome::Paused;
        }
        log(env, job, "info", &format!("step {}/{}: {step}", i + 1, job.steps.len())).await;
        let ran = match Step::parse(step) {
            Ok(parsed) => match tokio::time::timeout(kind.timeout(&parsed), kind.run(env, job, parsed)).await
            {
                Ok(done) => done.map_err(|e| e.context(format!("step {step}"))),
                Err(_) => Err(anyhow::anyhow!("step {step} timed out")),
            },
            Err(e) => Err(e.context(format!("step {step}"))),
        };
        if let Err(e) = ran {
            return Outcome::Failed(e);
        }
        // The last step's progress is recorded by `finish`, in the same statement.
        if i + 1 == job.steps.len() {
            break;
        }
        match db::jobs::advance(&env.db, job.id, worker, (i + 1) as i32, env.clock.now()).await {
            Ok(true) => {}
            Ok(false) => return Outcome::LostLease,
            Err(e) => return Outcome::Failed(anyhow::Error::from(e).context("recording progress")),
        }
    }
    Outcome::Done
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let secs: Vec<i64> = (1..=8).map(|a| backoff(a).whole_seconds()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
