//! What switchovers and failovers share between the requests that ask for them, the monitor
//! that starts failovers on its own, and their jobs: the checks on a switchover's candidate, and
//! the one way a failover is enqueued.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::kinds::{self, FailoverParams, SwitchoverParams};
use super::{Enqueue, NotEnqueued, Step};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{NodeId, OrgId, StoreId, UserId};
use crate::provision::Replication;

/// Why a candidate cannot take over in a switchover: a stable code and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
}

fn refuse(code: &'static str, detail: String) -> Option<Refusal> {
    Some(Refusal { code, detail })
}

/// The checks before a switchover, on what the primary (listening on `primary_port`) and the
/// candidate say of themselves: the candidate streams from the primary, on its timeline, within
/// `max_lag_bytes` of what it has written.
pub fn switchover_refusal(
    primary: Option<&Replication>,
    candidate: Option<&Replication>,
    primary_port: u16,
    max_lag_bytes: i64,
) -> Option<Refusal> {
    let Some(p) = primary.filter(|p| !p.in_recovery) else {
        return refuse("primary_down", "the primary does not answer: use a failover".into());
    };
    let Some(c) = candidate else {
        return refuse("candidate_not_streaming", "the candidate does not answer".into());
    };
    let streaming = c.receiver.as_ref().is_some_and(|r| r.streaming() && r.sender_port == Some(primary_port));
    if !c.in_recovery || !streaming {
        return refuse("candidate_not_streaming", "the candidate does not stream from the primary".into());
    }
    if c.timeline != p.timeline {
        return refuse(
            "candidate_timeline",
            format!("the candidate is on timeline {}, the primary on {}", c.timeline, p.timeline),
        );
    }
    let written = p.received.map_or(0, |l| l.0);
    let received = c.received.or(c.replayed).map_or(0, |l| l.0);
    let lag = written.saturating_sub(received);
    if lag > u64::try_from(max_lag_bytes).unwrap_or(0) {
        return refuse(
            "candidate_lagging",
            format!(
                "the candidate is {lag} bytes of WAL behind the primary, more than the store's \
                 max_lag_on_failover_bytes ({max_lag_bytes})"
            ),
        );
    }
    None
}

/// The steps of a switchover from `from` to `candidate`.
pub fn switchover_steps(from: NodeId, candidate: NodeId) -> Vec<Step> {
    vec![
        Step::Demote(from),
        Step::Promote(candidate),
        Step::Repoint,
        Step::Rejoin(from),
        Step::FinishAvailable,
    ]
}

/// Enqueues a switchover in the caller's transaction, to run at `at` (none: now).
pub async fn enqueue_switchover(
    tx: &mut PgConnection,
    org_id: OrgId,
    store_id: StoreId,
    params: SwitchoverParams,
    created_by: Option<UserId>,
    at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<JobRow, NotEnqueued> {
    let steps = switchover_steps(params.from, params.candidate);
    let job = Enqueue::typed::<kinds::Switchover>(store_id, params, steps).at(at);
    super::enqueue(tx, org_id, created_by, now, job).await
}

/// Enqueues a failover away from `params.from` in the caller's transaction: whatever other job
/// the store has (a failover waits for nothing), but never a second failover.
pub async fn enqueue_failover(
    tx: &mut PgConnection,
    org_id: OrgId,
    store_id: StoreId,
    params: FailoverParams,
    created_by: Option<UserId>,
    now: OffsetDateTime,
) -> Result<JobRow, NotEnqueued> {
    let from = params.from;
    let steps =
        vec![Step::Fence(from), Step::Elect(from), Step::Repoint, Step::Rejoin(from), Step::FinishAvailable];
    let job = super::enqueue(
        tx,
        org_id,
        created_by,
        now,
        Enqueue::typed::<kinds::Failover>(store_id, params, steps),
    )
    .await?;
    db::stores::set_status(&mut *tx, org_id, store_id, crate::domain::StoreStatus::Modifying, now).await?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::{Lsn, WalReceiver};

    fn primary(at: u64) -> Replication {
        Replication {
            in_recovery: false,
            timeline: 1,
            received: Some(Lsn(at)),
            replayed: None,
            last_replayed_at: None,
            receiver: None,
            standbys: vec![],
        }
    }

    fn standby(received: u64, status: &str, port: u16, timeline: u32) -> Replication {
        Replication {
            in_recovery: true,
            timeline,
            received: Some(Lsn(received)),
            replayed: Some(Lsn(received)),
            last_replayed_at: None,
            receiver: Some(WalReceiver {
                status: status.into(),
                sender_host: Some("127.0.0.1".into()),
                sender_port: Some(port),
                received_timeline: Some(timeline),
                silent_for: Some(std::time::Duration::from_millis(100)),
            }),
            standbys: vec![],
        }
    }

    #[test]
    fn a_switchover_needs_a_streaming_candidate_on_the_timeline_within_the_lag() {
        let code = |p: Option<&Replication>, c: Option<&Replication>| {
            switchover_refusal(p, c, 5432, 1_000).map(|r| r.code)
        };
        let p = primary(10_000);
        assert_eq!(code(Some(&p), Some(&standby(9_500, "streaming", 5432, 1))), None);
        assert_eq!(code(None, Some(&standby(9_500, "streaming", 5432, 1))), Some("primary_down"));
        assert_eq!(code(Some(&p), None), Some("candidate_not_streaming"));
        assert_eq!(
            code(Some(&p), Some(&standby(9_500, "waiting", 5432, 1))),
            Some("candidate_not_streaming")
        );
        // Streaming, but from another server.
        assert_eq!(
            code(Some(&p), Some(&standby(9_500, "streaming", 6000, 1))),
            Some("candidate_not_streaming")
        );
        assert_eq!(code(Some(&p), Some(&standby(9_500, "streaming", 5432, 2))), Some("candidate_timeline"));
        assert_eq!(code(Some(&p), Some(&standby(8_999, "streaming", 5432, 1))), Some("candidate_lagging"));
        // A primary asked to be its own candidate is not in recovery.
        assert_eq!(code(Some(&p), Some(&p)), Some("candidate_not_streaming"));
    }
}
