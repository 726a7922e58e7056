//! Steps, as stored in `jobs.steps`: `name` or `name:<id>` (a node's, a backup's, a VPC's or a
//! peering's). [`Step::parse`] reads that text and [`Step`]'s `Display` writes it; nothing else
//! does.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use uuid::Uuid;

use crate::domain::{BackupId, NodeId, PeeringId, VpcId};

/// The longest one step may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// Steps that copy a whole store (backups, restores, replicas made by `pg_basebackup`) take as
/// long as the data takes to copy; the lease, kept alive by the heartbeat, is what notices a
/// worker that died.
const COPY_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One step of a job. Each says what a crash of the process does to it: just before it (the
/// step runs when the job is taken again), in it, and just after it (before the worker recorded
/// it done: it runs again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `create_primary:<node id>`. Before: nothing on the host. In: `initdb` works in
    /// `data.init`, renamed into place only once complete, so a half-made cluster is discarded
    /// and made again; a server started but not yet given its roles is found running and its
    /// roles converge (`alter` or `create`). After: again, the same: the cluster exists, the
    /// server runs, the roles are as wanted.
    CreatePrimary(NodeId),
    /// `create_replica:<node id>`. Like [`Step::CreatePrimary`]: the copy (`pg_basebackup`) goes
    /// to `data.init` and is renamed into place whole, or discarded and made again.
    CreateReplica(NodeId),
    /// `remove_node:<node id>`. Before: the node runs. In: the row says `removing` first; the
    /// server stops, then its volume and folder go, then its row: a crash part-way leaves a
    /// stopped node whose removal the retry finishes (every part is idempotent). After: the
    /// node's row is gone, and the retry finds nothing to do.
    RemoveNode(NodeId),
    /// `restart_node:<node id>`. A stop, then a start: a crash between them leaves the node
    /// stopped, and the retry's stop does nothing and its start starts it. Nothing is lost
    /// either way: a fast stop.
    RestartNode(NodeId),
    /// `stop_node:<node id>`. A replica taken out of service on purpose. Before: the node runs
    /// (or has failed). In: the row says `stopped` first, so that neither the health check nor
    /// the reconcile at Berth's start brings the node back, then a fast stop (nothing
    /// committed is lost): a crash between the two leaves a server running that its row says
    /// stopped, which the retry stops. After: the retry's stop finds the server stopped and
    /// does nothing. A job that fails for good marks a server that still runs `running` again.
    StopNode(NodeId),
    /// `start_node:<node id>`. Before: the node is stopped (or failed, or already running). In:
    /// a node found not running is started with its spec from the tables, which carries its
    /// duty (a replica starts as a standby of the current primary; only the unfenced primary
    /// read-write), then its latest access is written and its row says `running`: a crash
    /// between the start and the row leaves a running server that its row says stopped (the
    /// reconcile at start leaves it as it is), which the retry finds running and only marks.
    /// After: the retry finds it running and changes nothing on the host.
    StartNode(NodeId),
    /// `rebuild_node:<node id>`. A replica removed and copied again from the primary (a primary
    /// is restarted in place): [`Step::RemoveNode`] and then [`Step::CreateReplica`], each as
    /// safe as they are.
    RebuildNode(NodeId),
    /// `reconfigure_node:<node id>`. [`Step::RestartNode`] with the node's configuration (and
    /// its volume's size) rewritten from the tables at the start.
    ReconfigureNode(NodeId),
    /// `grow_volume:<node id>`. Grows the node's volume to the store's size, online (or, where
    /// the host refuses that, with the node stopped for the moment). The filesystem's own size
    /// is compared with the store's each time, so a crash between extending the image and
    /// growing the filesystem is finished by the retry; a volume never shrinks. Where the host
    /// refuses to grow it online, a crash before the node started again leaves it stopped: the
    /// retry finds its volume grown or unmounted, and leaves the node (and the growing) to its
    /// next start, which Berth's own next start makes; the health check reports it failed
    /// meanwhile.
    GrowVolume(NodeId),
    /// `apply_parameters:<node id>`. Before: the group is in the tables; the node runs with its
    /// former parameters. In: each parameter is written by `alter system` (which rewrites
    /// `postgresql.auto.conf` whole), then the server reloads, then restarts if a changed
    /// parameter needs it: a crash leaves some written and not yet in force, and the retry
    /// writes them all again, reloads, and finds those still waiting for a restart in
    /// `pg_file_settings`. A crash between the restart's stop and its start leaves the node
    /// stopped: the retry starts it first. After: the retry writes the same values, finds
    /// nothing pending, and only reloads.
    ApplyParameters(NodeId),
    /// `take_backup:<backup id>`. Before: the backup's row is `running`, with no archive. In:
    /// the driver writes the archive aside (`.<name>.partial`), renames it to its key whole, and
    /// removes what it wrote aside if it fails; a crash leaves a partial one, which the retry
    /// removes before taking the backup again (from its own start), and one renamed into place
    /// but not yet recorded is taken again over it. After (the row says `succeeded`, the job not
    /// yet done): the retry keeps that backup and does nothing. A backup job that fails for good
    /// marks its backup `failed` and removes its archive, never one recorded as taken.
    TakeBackup(BackupId),
    /// `restore_node:<node id>`. Before: the node runs its current data. In: the backup is
    /// unpacked into `data.init`; the current data steps aside to `data.before-restore` and
    /// stays there until the restored node has recovered: a retry that finds data aside keeps it
    /// and treats what is in place as the failed attempt's copy, and a failure puts it back. The
    /// data replaced is removed in the background once the restored node serves; a crash
    /// meanwhile leaves it, and it goes at the node's next start. From a logical backup, each
    /// database is restored into one of its own and swapped in once whole, the one it replaces
    /// set aside until then: a crash leaves the original in place or set aside, never dropped,
    /// and the retry restores again. After: the node serves the restored data and the retry
    /// restores again (the same backup: the same result; writes made in between are replaced
    /// too).
    RestoreNode(NodeId),
    /// `fork_primary:<node id>`. The first node of a store made from another store's backup.
    /// Before: the node has no data. In: from a full backup, [`Step::RestoreNode`]'s restore
    /// (nothing to set aside the first time; a retry sets the earlier attempt's copy aside and
    /// removes it once its own has recovered), then the store's own roles and passwords as in
    /// [`Step::CreatePrimary`]: a crash between the two leaves a node with the source's roles,
    /// which the retry restores again before setting them. From a logical backup, an empty
    /// primary as [`Step::CreatePrimary`], then each database restored into one of its own and
    /// swapped in whole; a crash leaves a staging database that the retry drops and makes again.
    /// The source store is only read (its primary switches WAL segment, for a point in time, so
    /// that what it wrote is archived). After: the retry restores the same backup again; the
    /// store is `deploying` until the job ends, and what a client wrote to it meanwhile is
    /// replaced.
    ForkPrimary(NodeId),
    /// `delete_backups`. Removes a deleted store's backups, when its deletion asked for that.
    /// Before: the store's nodes are gone, its backups and archived WAL kept. In: the rows go
    /// first, in one statement, then each archive, then the store's whole folder of backups
    /// (every archive and its WAL), then its backup schedule: a crash after the rows leaves
    /// archives that no row names, which the retry's removal of the whole folder takes with it.
    /// After: the retry finds nothing left to remove.
    DeleteBackups,
    /// `finish_available`. One update of the store's status from its nodes' states: `available`
    /// when every node runs, else `degraded`. A crash before or in it leaves the job's
    /// transitional status (`deploying`, `modifying`, `restoring`) for the retry to settle;
    /// after it, the retry settles it again from the states as they are then.
    FinishAvailable,
    /// `finish_deleted`. One update of the store's status to `deleted`, once nothing of it is
    /// left on the host. A crash before or in it leaves the store `deleting` for the retry;
    /// after it, the retry sets the same status again.
    FinishDeleted,
    /// `noop`. Does nothing: a crash anywhere repeats nothing.
    Noop,
    /// `create_network:<vpc id>`. Before: the VPC is `creating`, with no namespace. In: the
    /// namespace, its loopback up, its bridge, the gateway address (`addr replace`) and the
    /// bridge up, each made only when missing: a crash leaves part of it, which the retry
    /// completes; a namespace file left by a crash inside `ip netns add` (no namespace behind
    /// it) is deleted and made again. The reconcile at start leaves a known VPC's namespace to
    /// its job and removes those no VPC knows. After: the VPC is `available`; the retry finds
    /// the network whole.
    CreateNetwork(VpcId),
    /// `remove_network:<vpc id>`. Before: the VPC is `deleting` and holds no store or peering.
    /// In: `ip netns del`, which unmounts the namespace (its links, and the far ends of its veth
    /// pairs, go with it) and then unlinks its file: a crash between the two leaves a file that
    /// is no namespace, which the reconcile at start passes over and the retry deletes. After:
    /// the VPC is `deleted`; the retry finds no namespace and marks it so again.
    RemoveNetwork(VpcId),
    /// `connect_peering:<peering id>`. Before: the peering is `provisioning` and both VPCs'
    /// networks exist. In: one veth pair made whole by one `ip link add`, an end in each
    /// namespace (one end found without the other is removed and the pair made again), then each
    /// end up and a route to the other block (`route replace`): a crash leaves part of it, which
    /// the retry completes; the reconcile at start keeps the link of a `provisioning` peering.
    /// After: the peering is `active`; the retry finds the pair and replaces its routes with the
    /// same.
    ConnectPeering(PeeringId),
    /// `apply_peering_access:<peering id>`. Every node of both VPCs gets its `pg_hba.conf`
    /// rewritten from the tables (a private store without firewall rules admits the blocks of
    /// its VPC's `active` peerings, not of a `deleting` one) and reloaded, one node after
    /// another: a crash leaves some nodes with their former rules, which the retry rewrites;
    /// after it, the retry writes the same again.
    ApplyPeeringAccess(PeeringId),
    /// `disconnect_peering:<peering id>`. Before: the peering is `deleting`, its access already
    /// withdrawn by [`Step::ApplyPeeringAccess`], its link in place (the reconcile at start
    /// keeps it for the job). In: deleting one end removes the pair and its routes at once.
    /// After: the peering is `deleted`; the retry finds no link and marks it so again.
    DisconnectPeering(PeeringId),
    /// `demote:<node id>`, the first half of a switchover: the old primary checkpointed and
    /// stopped (fast), then the candidate given until it has received the shutdown checkpoint.
    /// It has not within the wait: the old primary is started again as the primary (the tables
    /// still name it) and the job fails at once, nothing lost. Before: both run, the candidate
    /// streaming. In: a crash after the stop leaves the old primary stopped, cleanly; the retry
    /// finds its shutdown checkpoint and waits for the candidate again (Berth's own start may
    /// have started it again meanwhile: the retry stops it again). After: the retry finds the
    /// candidate already the primary and does nothing.
    Demote(NodeId),
    /// `promote:<node id>`. In a switchover, the old primary demoted again first if Berth's
    /// start, after a crash past [`Step::Demote`], started it again (as [`Step::Demote`] does;
    /// nothing once the tables name the candidate). The tables first, in one transaction: the node becomes the primary
    /// of a new timeline, the old primary a fenced replica, the promotion is in the history.
    /// Then the server is promoted and the timeline it writes on recorded. A crash between the
    /// two leaves the tables naming a primary still in recovery: the retry (or Berth's start,
    /// which starts the node as the primary its duty now says it is) promotes it; promoting a
    /// primary does nothing. After: the same, nothing changes.
    Promote(NodeId),
    /// `fence:<node id>`, the first step of a failover: the node is marked fenced in the tables
    /// (from then on nothing starts it read-write), then stopped, or killed if it will not stop.
    /// A crash anywhere: the retry marks and stops it again, which finds it stopped.
    Fence(NodeId),
    /// `elect:<node id>`, a failover's promotion: the replicas are asked how far they have
    /// received, the most advanced eligible one (or the one asked for) is chosen and promoted
    /// as [`Step::Promote`] does. A crash before the tables name it: the retry asks and chooses
    /// again. After: the retry finds a primary other than the old one and only makes sure it
    /// is promoted.
    Elect(NodeId),
    /// `repoint`. Every running replica but the fenced is told to follow the primary (its
    /// configuration rewritten from the tables and reloaded), then waited for to stream; one
    /// that cannot follow (it had received more than the new primary) rejoins as
    /// [`Step::Rejoin`] does. A node down is left to the health checks and a repair. Every part
    /// is idempotent: a crash repeats it.
    Repoint,
    /// `rejoin:<node id>`. A former primary (or a node found running read-write that was not
    /// the primary) comes back as a standby of the primary: fenced first, rewound with
    /// `pg_rewind` (or, if that fails, copied afresh), started as a standby, and then unfenced
    /// in the tables. A crash anywhere leaves it fenced and stopped or streaming; the retry
    /// rewinds again (nothing to do) and starts it.
    Rejoin(NodeId),
    /// `reconfigure:<node id>`. The node's configuration rewritten from the tables and
    /// reloaded, without a restart (a primary's synchronous standbys). Idempotent.
    Reconfigure(NodeId),
}

impl Step {
    /// The step's name, the text before any `:<id>`.
    pub fn name(&self) -> &'static str {
        match self {
            Step::CreatePrimary(_) => CREATE_PRIMARY,
            Step::CreateReplica(_) => CREATE_REPLICA,
            Step::RemoveNode(_) => REMOVE_NODE,
            Step::RestartNode(_) => RESTART_NODE,
            Step::StopNode(_) => STOP_NODE,
            Step::StartNode(_) => START_NODE,
            Step::RebuildNode(_) => REBUILD_NODE,
            Step::ReconfigureNode(_) => RECONFIGURE_NODE,
            Step::GrowVolume(_) => GROW_VOLUME,
            Step::ApplyParameters(_) => APPLY_PARAMETERS,
            Step::TakeBackup(_) => TAKE_BACKUP,
            Step::RestoreNode(_) => RESTORE_NODE,
            Step::ForkPrimary(_) => FORK_PRIMARY,
            Step::DeleteBackups => DELETE_BACKUPS,
            Step::FinishAvailable => FINISH_AVAILABLE,
            Step::FinishDeleted => FINISH_DELETED,
            Step::Noop => NOOP,
            Step::CreateNetwork(_) => CREATE_NETWORK,
            Step::RemoveNetwork(_) => REMOVE_NETWORK,
            Step::ConnectPeering(_) => CONNECT_PEERING,
            Step::ApplyPeeringAccess(_) => APPLY_PEERING_ACCESS,
            Step::DisconnectPeering(_) => DISCONNECT_PEERING,
            Step::Demote(_) => DEMOTE,
            Step::Promote(_) => PROMOTE,
            Step::Fence(_) => FENCE,
            Step::Elect(_) => ELECT,
            Step::Repoint => REPOINT,
            Step::Rejoin(_) => REJOIN,
            Step::Reconfigure(_) => RECONFIGURE,
        }
    }

    /// What the step acts on: a node, a backup, a VPC or a peering; none for a step of the
    /// whole store (or of nothing).
    pub fn id(&self) -> Option<Uuid> {
        match *self {
            Step::CreatePrimary(id)
            | Step::CreateReplica(id)
            | Step::RemoveNode(id)
            | Step::RestartNode(id)
            | Step::StopNode(id)
            | Step::StartNode(id)
            | Step::RebuildNode(id)
            | Step::ReconfigureNode(id)
            | Step::GrowVolume(id)
            | Step::ApplyParameters(id)
            | Step::RestoreNode(id)
            | Step::ForkPrimary(id)
            | Step::Demote(id)
            | Step::Promote(id)
            | Step::Fence(id)
            | Step::Elect(id)
            | Step::Rejoin(id)
            | Step::Reconfigure(id) => Some(id.into_uuid()),
            Step::TakeBackup(id) => Some(id.into_uuid()),
            Step::CreateNetwork(id) | Step::RemoveNetwork(id) => Some(id.into_uuid()),
            Step::ConnectPeering(id) | Step::ApplyPeeringAccess(id) | Step::DisconnectPeering(id) => {
                Some(id.into_uuid())
            }
            Step::DeleteBackups
            | Step::FinishAvailable
            | Step::FinishDeleted
            | Step::Noop
            | Step::Repoint => None,
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Step> {
        let (name, id) = match text.split_once(':') {
            Some((name, id)) => (name, Some(id.parse::<Uuid>().with_context(|| format!("step {text}"))?)),
            None => (text, None),
        };
        let on = |make: fn(Uuid) -> Step| id.map(make).with_context(|| format!("step {text} names no node"));
        let bare = |step: Step| match id {
            Some(_) => bail!("step {text} takes no id"),
            None => Ok(step),
        };
        match name {
            CREATE_PRIMARY => on(|id| Step::CreatePrimary(id.into())),
            CREATE_REPLICA => on(|id| Step::CreateReplica(id.into())),
            REMOVE_NODE => on(|id| Step::RemoveNode(id.into())),
            RESTART_NODE => on(|id| Step::RestartNode(id.into())),
            STOP_NODE => on(|id| Step::StopNode(id.into())),
            START_NODE => on(|id| Step::StartNode(id.into())),
            REBUILD_NODE => on(|id| Step::RebuildNode(id.into())),
            RECONFIGURE_NODE => on(|id| Step::ReconfigureNode(id.into())),
            GROW_VOLUME => on(|id| Step::GrowVolume(id.into())),
            APPLY_PARAMETERS => on(|id| Step::ApplyParameters(id.into())),
            TAKE_BACKUP => on(|id| Step::TakeBackup(id.into())),
            RESTORE_NODE => on(|id| Step::RestoreNode(id.into())),
            FORK_PRIMARY => on(|id| Step::ForkPrimary(id.into())),
            DELETE_BACKUPS => bare(Step::DeleteBackups),
            FINISH_AVAILABLE => bare(Step::FinishAvailable),
            FINISH_DELETED => bare(Step::FinishDeleted),
            NOOP => bare(Step::Noop),
            CREATE_NETWORK => on(|id| Step::CreateNetwork(id.into())),
            REMOVE_NETWORK => on(|id| Step::RemoveNetwork(id.into())),
            CONNECT_PEERING => on(|id| Step::ConnectPeering(id.into())),
            APPLY_PEERING_ACCESS => on(|id| Step::ApplyPeeringAccess(id.into())),
            DISCONNECT_PEERING => on(|id| Step::DisconnectPeering(id.into())),
            DEMOTE => on(|id| Step::Demote(id.into())),
            PROMOTE => on(|id| Step::Promote(id.into())),
            FENCE => on(|id| Step::Fence(id.into())),
            ELECT => on(|id| Step::Elect(id.into())),
            REPOINT => bare(Step::Repoint),
            REJOIN => on(|id| Step::Rejoin(id.into())),
            RECONFIGURE => on(|id| Step::Reconfigure(id.into())),
            other => bail!("unknown step {other}"),
        }
    }

    /// The longest the step may take before it counts as failed.
    pub fn timeout(&self) -> Duration {
        match self {
            Step::TakeBackup(_)
            | Step::RestoreNode(_)
            | Step::ForkPrimary(_)
            | Step::CreateReplica(_)
            | Step::RebuildNode(_)
            // A rewind that fails copies the node afresh.
            | Step::Rejoin(_)
            | Step::Repoint => COPY_STEP_TIMEOUT,
            _ => STEP_TIMEOUT,
        }
    }

    /// The steps as stored.
    pub fn render_all(steps: &[Step]) -> Vec<String> {
        steps.iter().map(Step::to_string).collect()
    }
}

/// The stored text: `name` or `name:<id>`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "{}:{id}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

// The stored names, read by [`Step::parse`] and written by its `Display`.

/// [`Step::CreatePrimary`]
const CREATE_PRIMARY: &str = "create_primary";
/// [`Step::CreateReplica`]
const CREATE_REPLICA: &str = "create_replica";
/// [`Step::RemoveNode`]
const REMOVE_NODE: &str = "remove_node";
/// [`Step::RestartNode`]
const RESTART_NODE: &str = "restart_node";
/// [`Step::StopNode`]
const STOP_NODE: &str = "stop_node";
/// [`Step::StartNode`]
const START_NODE: &str = "start_node";
/// [`Step::RebuildNode`]
const REBUILD_NODE: &str = "rebuild_node";
/// [`Step::ReconfigureNode`]
const RECONFIGURE_NODE: &str = "reconfigure_node";
/// [`Step::GrowVolume`]
const GROW_VOLUME: &str = "grow_volume";
/// [`Step::ApplyParameters`]
const APPLY_PARAMETERS: &str = "apply_parameters";
/// [`Step::TakeBackup`]
const TAKE_BACKUP: &str = "take_backup";
/// [`Step::RestoreNode`]
const RESTORE_NODE: &str = "restore_node";
/// [`Step::ForkPrimary`]
const FORK_PRIMARY: &str = "fork_primary";
/// [`Step::DeleteBackups`]
const DELETE_BACKUPS: &str = "delete_backups";
/// [`Step::FinishAvailable`]
const FINISH_AVAILABLE: &str = "finish_available";
/// [`Step::FinishDeleted`]
const FINISH_DELETED: &str = "finish_deleted";
/// [`Step::Noop`]
const NOOP: &str = "noop";
/// [`Step::CreateNetwork`]
const CREATE_NETWORK: &str = "create_network";
/// [`Step::RemoveNetwork`]
const REMOVE_NETWORK: &str = "remove_network";
/// [`Step::ConnectPeering`]
const CONNECT_PEERING: &str = "connect_peering";
/// [`Step::ApplyPeeringAccess`]
const APPLY_PEERING_ACCESS: &str = "apply_peering_access";
/// [`Step::DisconnectPeering`]
const DISCONNECT_PEERING: &str = "disconnect_peering";
/// [`Step::Demote`]
const DEMOTE: &str = "demote";
/// [`Step::Promote`]
const PROMOTE: &str = "promote";
/// [`Step::Fence`]
const FENCE: &str = "fence";
/// [`Step::Elect`]
const ELECT: &str = "elect";
/// [`Step::Repoint`]
const REPOINT: &str = "repoint";
/// [`Step::Rejoin`]
const REJOIN: &str = "rejoin";
/// [`Step::Reconfigure`]
const RECONFIGURE: &str = "reconfigure";

#[cfg(test)]
mod tests {
    use super::*;

    fn every_step(id: Uuid) -> Vec<Step> {
        let node = NodeId::from(id);
        vec![
            Step::CreatePrimary(node),
            Step::CreateReplica(node),
            Step::RemoveNode(node),
            Step::RestartNode(node),
            Step::StopNode(node),
            Step::StartNode(node),
            Step::RebuildNode(node),
            Step::ReconfigureNode(node),
            Step::GrowVolume(node),
            Step::ApplyParameters(node),
            Step::TakeBackup(id.into()),
            Step::RestoreNode(node),
            Step::ForkPrimary(node),
            Step::DeleteBackups,
            Step::FinishAvailable,
            Step::FinishDeleted,
            Step::Noop,
            Step::CreateNetwork(id.into()),
            Step::RemoveNetwork(id.into()),
            Step::ConnectPeering(id.into()),
            Step::ApplyPeeringAccess(id.into()),
            Step::DisconnectPeering(id.into()),
            Step::Demote(node),
            Step::Promote(node),
            Step::Fence(node),
            Step::Elect(node),
            Step::Repoint,
            Step::Rejoin(node),
            Step::Reconfigure(node),
        ]
    }

    #[test]
    fn every_step_parses_back_from_its_text() {
        let id = Uuid::now_v7();
        let steps = every_step(id);
        for step in &steps {
            let text = step.to_string();
            assert_eq!(Step::parse(&text).unwrap(), *step, "{text}");
            // The text is the stored format: `name` or `name:<id>`, as `on` wrote it.
            match step.id() {
                Some(id) => assert_eq!(text, format!("{}:{id}", step.name())),
                None => assert_eq!(text, step.name()),
            }
        }
        let mut names: Vec<&str> = steps.iter().map(Step::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), steps.len(), "every step has its own name");
    }

    #[test]
    fn stored_texts_read_as_today() {
        let id: Uuid = "0190f1e4-7c3a-7000-8000-000000000001".parse().unwrap();
        assert_eq!(
            Step::parse("create_replica:0190f1e4-7c3a-7000-8000-000000000001").unwrap(),
            Step::CreateReplica(id.into())
        );
        assert_eq!(Step::parse("finish_available").unwrap(), Step::FinishAvailable);
        assert_eq!(
            Step::TakeBackup(id.into()).to_string(),
            "take_backup:0190f1e4-7c3a-7000-8000-000000000001"
        );
    }

    #[test]
    fn bad_steps_say_why() {
        let e = |s: &str| format!("{:#}", Step::parse(s).unwrap_err());
        assert!(e("no_such_step").contains("unknown step no_such_step"));
        assert!(e("create_primary").contains("names no node"));
        assert!(e("create_primary:nope").contains("step create_primary:nope"));
        assert!(e(&format!("noop:{}", Uuid::nil())).contains("takes no id"));
    }

    #[test]
    fn copying_steps_get_a_day_and_the_rest_ten_minutes() {
        let id = Uuid::nil();
        for step in every_step(id) {
            let copies = matches!(
                step,
                Step::TakeBackup(_)
                    | Step::RestoreNode(_)
                    | Step::ForkPrimary(_)
                    | Step::CreateReplica(_)
                    | Step::RebuildNode(_)
                    | Step::Rejoin(_)
                    | Step::Repoint
            );
            assert_eq!(step.timeout(), if copies { COPY_STEP_TIMEOUT } else { STEP_TIMEOUT }, "{step}");
        }
    }
}
