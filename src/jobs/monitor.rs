//! The failover monitor. One Berth instance at a time runs it (a lease in `ha_leader`, renewed
//! every probe; another instance takes over once it runs out). Every probe interval it asks
//! each node of every store with replicas how it is, records what it saw, stops any node that
//! runs read-write without being the store's primary, and, when a primary has failed every
//! probe for the store's `failover_delay` and no replica still receives WAL from it, starts a
//! failover job.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::kinds::{self, FailoverParams};
use super::{JobEnv, NotEnqueued};
use crate::db;
use crate::db::ha::{NewEvent, Seen, StoreHa};
use crate::db::stores::NodeRow;
use crate::domain::ha::EventKind;
use crate::domain::{NodeId, NodeRole, NodeState, StoreId};
use crate::provision::Replication;

/// A primary must have failed at least this many probes in a row, whatever the delay.
const MIN_FAILED_PROBES: u32 = 3;
/// A replica that heard from the primary within this still receives its WAL: Berth cannot
/// reach the primary, but it runs. (Nodes' `wal_sender_timeout` is 10 s: an idle primary sends
/// a keepalive every 5 s.)
const FED_WINDOW: Duration = Duration::from_secs(8);

#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub probe_interval: Duration,
    /// Automatic failovers a store may have within `failover_window` before its HA is paused.
    pub max_failovers: u32,
    pub failover_window: Duration,
}

/// What the monitor remembers of a store between probes (lost when another instance takes
/// over, which then waits a whole delay again: a failover comes later, never sooner).
#[derive(Debug, Default)]
struct Watch {
    /// The primary watched: another one (after a failover) starts afresh.
    primary: Option<NodeId>,
    /// When the primary first failed a probe, and how many in a row it has failed.
    down_since: Option<Instant>,
    failed_probes: u32,
    /// The outage has been told (a `node_down` event), and a blocked failover too.
    told_down: bool,
    told_blocked: bool,
    /// Replicas whose lag is over the store's limit, told once until they catch up.
    lagging: HashSet<NodeId>,
}

pub struct Monitor {
    env: JobEnv,
    settings: MonitorSettings,
    holder: String,
    watches: HashMap<StoreId, Watch>,
}

impl Monitor {
    pub fn new(env: JobEnv, settings: MonitorSettings) -> Self {
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let holder = format!("{host}:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Self { env, settings, holder, watches: HashMap::new() }
    }

    /// Probes forever, every probe interval.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.settings.probe_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %format!("{e:#}"), "failover monitor");
            }
        }
    }

    /// One round: takes or renews the lease, then, if this instance holds it, watches every store.
    pub async fn tick(&mut self) -> anyhow::Result<bool> {
        let now = self.env.clock.now();
        // The lease outlives a few missed probes, not more.
        let ttl =
            time::Duration::try_from(self.settings.probe_interval * 5).unwrap_or(time::Duration::seconds(5));
        if !db::ha::lead(&self.env.db, &self.holder, now, now + ttl.max(time::Duration::seconds(3))).await? {
            self.watches.clear();
            return Ok(false);
        }
        let stores = db::ha::watched(&self.env.db).await?;
        let live: HashSet<StoreId> = stores.iter().map(|s| s.store_id).collect();
        self.watches.retain(|id, _| live.contains(id));
        for store in stores {
            if let Err(e) = self.watch(&store).await {
                tracing::warn!(store_id = %store.store_id, error = %format!("{e:#}"), "failover monitor");
            }
        }
        Ok(true)
    }

    /// Gives the lease up, so that another instance takes over at once.
    pub async fn resign(&self) {
        if let Err(e) = db::ha::resign(&self.env.db, &self.holder).await {
            tracing::warn!(error = %e, "giving up the failover monitor's lease");
        }
    }

    async fn event(
        &self,
        store: &StoreHa,
        node: Option<NodeId>,
        kind: EventKind,
        message: &str,
    ) -> anyhow::Result<()> {
        tracing::warn!(store_id = %store.store_id, node_id = ?node, kind = %kind, "{message}");
        let e = NewEvent { node_id: node, kind, message, actor_id: None };
        db::ha::insert_event(&self.env.db, store.org_id, store.store_id, &e, self.env.clock.now()).await?;
        Ok(())
    }

    async fn watch(&mut self, store: &StoreHa) -> anyhow::Result<()> {
        let env = &self.env;
        let nodes = db::stores::nodes(&env.db, store.org_id, &[store.store_id]).await?;
        let nodes: Vec<NodeRow> = nodes
            .into_iter()
            .filter(|n| !matches!(n.state, NodeState::Creating | NodeState::Removing))
            .collect();
        // All at once: a primary that hangs costs one probe's timeout, not one per node.
        let probes: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (driver, spec) = (env.plane.driver.clone(), env.plane.probe_spec(n));
                tokio::spawn(async move { driver.replication(&spec?).await })
            })
            .collect();
        let primary = nodes.iter().position(|n| n.role == NodeRole::Primary && !n.fenced);
        let mut seen: Vec<Option<Replication>> = Vec::with_capacity(probes.len());
        for (i, probe) in probes.into_iter().enumerate() {
            match probe.await.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(s) => seen.push(s),
                // Not an answer either way: a probe that could not be made says nothing of the
                // primary, and counts as no failed probe.
                Err(e) if Some(i) == primary => return Err(e.context("probing the primary")),
                Err(_) => seen.push(None),
            }
        }
        self.record(store, &nodes, &seen, primary).await?;
        self.enforce_fencing(store, &nodes, &seen).await?;
        let Some(p) = primary else { return Ok(()) };
        // A job that stops nodes on purpose (a restart, a switchover, a failover) is no outage.
        let active = db::jobs::active_for_store(&env.db, store.org_id, store.store_id).await?;
        if active.is_some_and(|j| kinds::of(&j.kind).stops_nodes()) {
            self.watches.remove(&store.store_id);
            return Ok(());
        }
        let watch = self.watches.entry(store.store_id).or_default();
        if watch.primary != Some(nodes[p].id) {
            *watch = Watch { primary: Some(nodes[p].id), ..Watch::default() };
        }
        if seen[p].as_ref().is_some_and(|s| !s.in_recovery) || nodes[p].state == NodeState::Stopped {
            let was_told = watch.told_down;
            *watch = Watch {
                primary: watch.primary,
                lagging: std::mem::take(&mut watch.lagging),
                ..Watch::default()
            };
            if was_told {
                self.event(store, Some(nodes[p].id), EventKind::NodeUp, "the primary answers again").await?;
            }
            return self.watch_lag(store, &nodes, &seen, p).await;
        }
        let since = *watch.down_since.get_or_insert_with(Instant::now);
        watch.failed_probes += 1;
        let (failed, tell) = (watch.failed_probes, !watch.told_down && watch.failed_probes >= 2);
        if tell && !nodes[p].maintenance {
            if let Some(w) = self.watches.get_mut(&store.store_id) {
                w.told_down = true;
            }
            let message = format!("the primary {} does not answer", nodes[p].id);
            self.event(store, Some(nodes[p].id), EventKind::NodeDown, &message).await?;
        }
        let delay = Duration::from_secs(u64::try_from(store.settings.failover_delay).unwrap_or(1));
        if failed < MIN_FAILED_PROBES || since.elapsed() < delay {
            return Ok(());
        }
        if let Some(why) = self.failover_blocked(store, &nodes, &seen, p).await? {
            let watch = self.watches.entry(store.store_id).or_default();
            if !watch.told_blocked {
                watch.told_blocked = true;
                let message = format!("the primary is down and no failover starts: {why}");
                self.event(store, Some(nodes[p].id), EventKind::FailoverBlocked, &message).await?;
            }
            return Ok(());
        }
        self.fail_over(store, nodes[p].id).await
    }

    /// Why no automatic failover may start now, if none may.
    async fn failover_blocked(
        &self,
        store: &StoreHa,
        nodes: &[NodeRow],
        seen: &[Option<Replication>],
        p: usize,
    ) -> anyhow::Result<Option<String>> {
        if !store.settings.auto_failover {
            return Ok(Some("auto_failover is off".into()));
        }
        if store.paused_at.is_some() {
            return Ok(Some("the store's HA is paused".into()));
        }
        let port = u16::try_from(nodes[p].port).unwrap_or(0);
        let still_fed =
            seen.iter().flatten().filter_map(|s| s.receiver.as_ref()).any(|r| r.fed_by(port, FED_WINDOW));
        if still_fed {
            return Ok(Some(
                "a replica still receives WAL from it: Berth cannot reach it, but it runs".into(),
            ));
        }
        let replicas: Vec<usize> =
            (0..nodes.len()).filter(|&i| i != p && nodes[i].role == NodeRole::Replica).collect();
        let answering = replicas
            .iter()
            .filter(|&&i| {
                seen[i].as_ref().is_some_and(|s| s.in_recovery) && !nodes[i].maintenance && !nodes[i].fenced
            })
            .count();
        if answering == 0 {
            return Ok(Some("no replica answers (or every one is fenced or in maintenance)".into()));
        }
        let needed = store.settings.synchronous.replicas_needed_for_failover(replicas.len());
        if answering < needed {
            return Ok(Some(format!(
                "in synchronous mode {} a failover needs {needed} replicas to answer, and {answering} do",
                store.settings.synchronous
            )));
        }
        let window = time::Duration::try_from(self.settings.failover_window).unwrap_or(time::Duration::HOUR);
        let recent =
            db::ha::automatic_failovers_since(&self.env.db, store.store_id, self.env.clock.now() - window)
                .await?;
        if recent >= i64::from(self.settings.max_failovers) {
            let reason = format!(
                "{recent} automatic failovers within {}: paused for a person to look at",
                humantime::format_duration(self.settings.failover_window)
            );
            if db::ha::set_paused(
                &self.env.db,
                store.org_id,
                store.store_id,
                Some(&reason),
                self.env.clock.now(),
            )
            .await?
            {
                self.event(store, None, EventKind::HaPaused, &reason).await?;
            }
            return Ok(Some(reason));
        }
        Ok(None)
    }

    async fn fail_over(&mut self, store: &StoreHa, from: NodeId) -> anyhow::Result<()> {
        let params = FailoverParams { from, candidate: None, automatic: true, force: false };
        let now = self.env.clock.now();
        let mut tx = self.env.db.begin().await?;
        match super::ha::enqueue_failover(&mut tx, store.org_id, store.store_id, params, None, now).await {
            Ok(job) => {
                tx.commit().await?;
                self.watches.remove(&store.store_id);
                tracing::warn!(store_id = %store.store_id, job = %job.id, "the primary is gone: failing over");
                // The workers of this process are woken by their own polling: a failover job
                // is claimed within a poll.
                Ok(())
            }
            // One is under way already.
            Err(NotEnqueued::Blocked(_)) => Ok(()),
            Err(NotEnqueued::Db(e)) => Err(e.into()),
        }
    }

    /// Records what each node said (a node that did not answer keeps its last LSNs).
    async fn record(
        &self,
        store: &StoreHa,
        nodes: &[NodeRow],
        seen: &[Option<Replication>],
        primary: Option<usize>,
    ) -> anyhow::Result<()> {
        let _ = store;
        let links = primary.and_then(|p| seen[p].as_ref()).map(|p| p.standbys.as_slice()).unwrap_or_default();
        let written = primary.and_then(|p| seen[p].as_ref()).and_then(|p| p.received);
        let now = self.env.clock.now();
        for (node, s) in nodes.iter().zip(seen) {
            let Some(s) = s else {
                db::ha::set_seen(&self.env.db, node.id, &Seen::unanswered(node), now).await?;
                continue;
            };
            let link = links.iter().find(|l| l.application_name == node.id.to_string());
            let lsn = |l: Option<crate::provision::Lsn>| l.and_then(|l| i64::try_from(l.0).ok());
            let caught_up = s.in_recovery && written.is_some() && s.replayed >= written;
            // What the primary saw the replica flush, in the same snapshot as what it had
            // written: their difference is the replica's lag, not two probes' timing.
            let received = link.and_then(|l| l.flushed).or(s.received);
            let record = Seen {
                timeline: i32::try_from(s.timeline).ok(),
                received_lsn: lsn(received),
                replayed_lsn: lsn(s.replayed),
                lag_seconds: if caught_up { Some(0.0) } else { link.and_then(|l| l.replay_lag_seconds) },
                streaming: s.in_recovery.then(|| s.receiver.as_ref().is_some_and(|r| r.streaming())),
                sync_state: link.map(|l| l.sync_state.clone()),
            };
            db::ha::set_seen(&self.env.db, node.id, &record, now).await?;
        }
        Ok(())
    }

    /// A node that runs read-write without being the store's primary is stopped at once and
    /// fenced: it rejoins as a replica with a repair.
    async fn enforce_fencing(
        &self,
        store: &StoreHa,
        nodes: &[NodeRow],
        seen: &[Option<Replication>],
    ) -> anyhow::Result<()> {
        for (node, s) in nodes.iter().zip(seen) {
            let writable = s.as_ref().is_some_and(|s| !s.in_recovery);
            if !writable || (node.role == NodeRole::Primary && !node.fenced) {
                continue;
            }
            let Some(spec) = self
                .env
                .plane
                .node_spec(&self.env.db, store.org_id, store.store_id, node.id, self.env.clock.now())
                .await?
            else {
                continue;
            };
            self.env.plane.driver.fence(&spec).await?;
            db::ha::set_fenced(&self.env.db, node.id, true, self.env.clock.now()).await?;
            let message = format!(
                "node {} ran read-write without being the store's primary: it was stopped and fenced; a repair brings it back as a replica",
                node.id
            );
            self.event(store, Some(node.id), EventKind::Fenced, &message).await?;
        }
        Ok(())
    }

    /// Tells once when a replica's lag passes the store's failover limit, and when it is back.
    async fn watch_lag(
        &mut self,
        store: &StoreHa,
        nodes: &[NodeRow],
        seen: &[Option<Replication>],
        p: usize,
    ) -> anyhow::Result<()> {
        let written = seen[p].as_ref().and_then(|s| s.received).map_or(0, |l| l.0);
        let limit = u64::try_from(store.settings.max_lag_on_failover_bytes).unwrap_or(0);
        let mut told = Vec::new();
        let watch = self.watches.entry(store.store_id).or_default();
        for (node, s) in nodes.iter().zip(seen) {
            let Some(s) = s.as_ref().filter(|s| s.in_recovery) else { continue };
            if node.maintenance {
                continue;
            }
            let lag = written.saturating_sub(s.received.or(s.replayed).map_or(0, |l| l.0));
            if lag > limit && watch.lagging.insert(node.id) {
                told.push((
                    node.id,
                    EventKind::LagOverThreshold,
                    format!(
                        "node {} is {lag} bytes behind the primary, over max_lag_on_failover_bytes ({limit})",
                        node.id
                    ),
                ));
            } else if lag <= limit && watch.lagging.remove(&node.id) {
                told.push((
                    node.id,
                    EventKind::LagRecovered,
                    format!("node {} has caught up with the primary", node.id),
                ));
            }
        }
        for (node, kind, message) in told {
            self.event(store, Some(node), kind, &message).await?;
        }
        Ok(())
    }
}
