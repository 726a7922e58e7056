//! The rules of high availability that need no I/O: the synchronous modes, which replica a
//! failover or switchover promotes, the store's HA phase, and the HA settings' bounds.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::status::text_enum;
use super::{Error, NodeId};

text_enum! {
    /// Whether a commit on the primary waits for replicas to have its WAL.
    SyncMode {
        /// Commits do not wait: a failover may lose what the promoted replica had not received.
        Off = "off",
        /// A commit waits for one replica (any of them) to have flushed it.
        #[serde(rename = "any_1")]
        #[sqlx(rename = "any_1")]
        Any1 = "any_1",
        /// A commit waits for a majority of the store's nodes, the primary counted, to have
        /// flushed it.
        Quorum = "quorum",
    }
}

text_enum! {
    /// What the store's high availability is doing.
    HaPhase {
        /// One primary, every replica streaming from it.
        Healthy = "healthy",
        /// A switchover is in progress.
        Switchover = "switchover",
        /// A failover is in progress.
        FailingOver = "failing_over",
        /// The primary is down with no failover under way, or a replica is not streaming.
        Degraded = "degraded",
        /// The monitor leaves the store alone: a person paused it, or the failover limit did.
        Paused = "paused",
    }
}

text_enum! {
    /// How a replica became the primary.
    PromotionKind {
        /// Planned: the old primary stopped cleanly first and the candidate had all its WAL.
        Switchover = "switchover",
        /// The old primary was gone (or forced out) and was fenced first.
        Failover = "failover",
    }
}

text_enum! {
    /// What happened to a store (its events).
    EventKind {
        NodeDown = "node_down",
        NodeUp = "node_up",
        Failover = "failover",
        Switchover = "switchover",
        SwitchoverAborted = "switchover_aborted",
        Fenced = "fenced",
        Rejoined = "rejoined",
        LagOverThreshold = "lag_over_threshold",
        LagRecovered = "lag_recovered",
        DiskFull = "disk_full",
        FailoverBlocked = "failover_blocked",
        HaPaused = "ha_paused",
        HaResumed = "ha_resumed",
        MaintenanceOn = "maintenance_on",
        MaintenanceOff = "maintenance_off",
    }
}

impl SyncMode {
    /// How many replicas must have flushed a commit before it returns: none when off.
    pub fn acks(self, replicas: usize) -> usize {
        match self {
            Self::Off => 0,
            Self::Any1 => replicas.min(1),
            // A majority of `replicas + 1` nodes, the primary being one of them.
            Self::Quorum => replicas.div_ceil(2),
        }
    }

    /// `synchronous_standby_names` for a primary whose replicas are `replicas` (their
    /// `application_name` is their id): empty when commits wait for none.
    pub fn standby_names(self, replicas: &[NodeId]) -> String {
        let acks = self.acks(replicas.len());
        if acks == 0 {
            return String::new();
        }
        let names: Vec<String> = replicas.iter().map(|id| format!("\"{id}\"")).collect();
        format!("ANY {acks} ({})", names.join(", "))
    }

    /// How many replicas a failover must hear from to be sure that one of them has every
    /// acknowledged commit: with `acks` of `replicas` acknowledging, any `replicas - acks + 1`
    /// of them include one that did. Asynchronous: any one.
    pub fn replicas_needed_for_failover(self, replicas: usize) -> usize {
        match self.acks(replicas) {
            0 => 1,
            acks => replicas - acks + 1,
        }
    }
}

/// A replica as a promotion weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: NodeId,
    /// It answered, streams or streamed, and is neither fenced nor in maintenance.
    pub eligible: bool,
    /// WAL received (flushed) and replayed, as byte positions.
    pub received: u64,
    pub replayed: u64,
}

/// Why no replica can be promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCandidate {
    /// Every replica is down, fenced or in maintenance.
    NoneEligible,
    /// The best one is further behind than allowed.
    TooFarBehind { node_id: NodeId, lag_bytes: u64 },
}

/// The replica to promote: the highest received WAL, then replayed, then the smallest id; within
/// `max_lag_bytes` of `primary_at`, where the primary was last seen writing (unknown: no limit).
pub fn choose_candidate(
    candidates: &[Candidate],
    primary_at: Option<u64>,
    max_lag_bytes: u64,
) -> Result<NodeId, NoCandidate> {
    let best = candidates
        .iter()
        .filter(|c| c.eligible)
        .min_by_key(|c| (Reverse(c.received), Reverse(c.replayed), c.node_id.0))
        .ok_or(NoCandidate::NoneEligible)?;
    let lag = primary_at.map_or(0, |p| p.saturating_sub(best.received));
    if lag > max_lag_bytes {
        return Err(NoCandidate::TooFarBehind { node_id: best.node_id, lag_bytes: lag });
    }
    Ok(best.node_id)
}

/// The HA settings of a store, as a PATCH may change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HaSettings {
    /// Promote a replica automatically when the primary is gone (stores with replicas only).
    pub auto_failover: bool,
    /// Seconds the primary must have failed every probe before a failover (1 to 3600).
    pub failover_delay: i32,
    /// A replica further behind than this (bytes of WAL) is not promoted automatically.
    pub max_lag_on_failover_bytes: i64,
    pub synchronous: SyncMode,
}

impl HaSettings {
    pub fn check(&self) -> Result<(), Error> {
        let field = |f: &str, m: &str| super::FieldError { field: f.into(), message: m.into() };
        let mut errors = Vec::new();
        if !(1..=3600).contains(&self.failover_delay) {
            errors.push(field("ha.failover_delay", "must be 1 to 3600 seconds"));
        }
        if self.max_lag_on_failover_bytes < 0 {
            errors.push(field("ha.max_lag_on_failover_bytes", "must not be negative"));
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::invalid(errors)) }
    }
}

/// A change of some of a store's HA settings (PATCH of the store, `ha`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HaPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_failover: Option<bool>,
    /// Seconds, 1 to 3600.
    #[schema(minimum = 1, maximum = 3600)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_delay: Option<i32>,
    #[schema(minimum = 0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag_on_failover_bytes: Option<i64>,
    /// A new mode is applied to the primary by a job, without a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<SyncMode>,
}

impl HaPatch {
    /// `current` with this patch's values, if they are within bounds.
    pub fn apply(&self, current: HaSettings) -> Result<HaSettings, Error> {
        let new = HaSettings {
            auto_failover: self.auto_failover.unwrap_or(current.auto_failover),
            failover_delay: self.failover_delay.unwrap_or(current.failover_delay),
            max_lag_on_failover_bytes: self
                .max_lag_on_failover_bytes
                .unwrap_or(current.max_lag_on_failover_bytes),
            synchronous: self.synchronous.unwrap_or(current.synchronous),
        };
        new.check()?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = (0..n).map(|_| NodeId::new()).collect();
        v.sort_by_key(|id| id.0);
        v
    }

    #[test]
    fn synchronous_modes_wait_for_the_replicas_they_say() {
        let r = ids(2);
        assert_eq!(SyncMode::Off.standby_names(&r), "");
        assert_eq!(SyncMode::Any1.standby_names(&r), format!("ANY 1 (\"{}\", \"{}\")", r[0], r[1]));
        // Three nodes: a majority is two, the primary and one replica.
        assert_eq!(SyncMode::Quorum.acks(2), 1);
        // Five nodes: three, the primary and two replicas.
        assert_eq!(SyncMode::Quorum.acks(4), 2);
        assert_eq!(SyncMode::Any1.standby_names(&[]), "");
    }

    #[test]
    fn a_synchronous_failover_hears_from_enough_replicas_to_hold_every_commit() {
        assert_eq!(SyncMode::Off.replicas_needed_for_failover(2), 1);
        assert_eq!(SyncMode::Any1.replicas_needed_for_failover(2), 2);
        assert_eq!(SyncMode::Any1.replicas_needed_for_failover(1), 1);
        assert_eq!(SyncMode::Quorum.replicas_needed_for_failover(4), 3);
    }

    #[test]
    fn the_most_advanced_eligible_replica_is_chosen_within_the_lag_limit() {
        let r = ids(3);
        let c = |i: usize, eligible, received, replayed| Candidate {
            node_id: r[i],
            eligible,
            received,
            replayed,
        };
        // Received first, then replayed, then the id.
        assert_eq!(choose_candidate(&[c(0, true, 10, 10), c(1, true, 20, 5)], None, 0), Ok(r[1]));
        assert_eq!(choose_candidate(&[c(0, true, 20, 5), c(1, true, 20, 9)], None, 0), Ok(r[1]));
        assert_eq!(choose_candidate(&[c(1, true, 20, 9), c(0, true, 20, 9)], None, 0), Ok(r[0]));
        // Ineligible ones are passed over however far ahead.
        assert_eq!(choose_candidate(&[c(0, false, 99, 99), c(2, true, 20, 9)], None, 0), Ok(r[2]));
        assert_eq!(choose_candidate(&[c(0, false, 1, 1)], None, 0), Err(NoCandidate::NoneEligible));
        // Too far behind the primary's last known position.
        assert_eq!(
            choose_candidate(&[c(0, true, 100, 100)], Some(1_100), 999),
            Err(NoCandidate::TooFarBehind { node_id: r[0], lag_bytes: 1_000 })
        );
        assert_eq!(choose_candidate(&[c(0, true, 100, 100)], Some(1_100), 1_000), Ok(r[0]));
    }

    #[test]
    fn settings_out_of_bounds_are_refused_with_their_field() {
        let ok = HaSettings {
            auto_failover: true,
            failover_delay: 5,
            max_lag_on_failover_bytes: 0,
            synchronous: SyncMode::Off,
        };
        assert!(ok.check().is_ok());
        let bad = HaSettings { failover_delay: 0, max_lag_on_failover_bytes: -1, ..ok };
        let Err(Error::Invalid { errors, .. }) = bad.check() else { panic!("accepted") };
        assert_eq!(errors.len(), 2);
        let patch = HaPatch { synchronous: Some(SyncMode::Quorum), ..HaPatch::default() };
        assert_eq!(patch.apply(ok).unwrap(), HaSettings { synchronous: SyncMode::Quorum, ..ok });
        assert!(HaPatch { failover_delay: Some(3601), ..HaPatch::default() }.apply(ok).is_err());
    }
}
