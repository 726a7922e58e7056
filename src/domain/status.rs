//! The statuses of stores, nodes, jobs, backups, VPCs and peerings, and the kinds of nodes and
//! backups, as their tables hold them (the migrations' check constraints list the same values),
//! and the one table of which operations a store's status allows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Error;

/// Declares a status enum stored as text: its values, serde and sqlx both in snake_case, and
/// `as_str` for messages.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
        #[serde(rename_all = "snake_case")]
        #[sqlx(type_name = "text", rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(super) use text_enum;

text_enum! {
    /// What a node is to its store.
    NodeRole {
        /// Takes the writes.
        Primary = "primary",
        /// Streams from the primary and serves reads.
        Replica = "replica",
    }
}

text_enum! {
    /// What a backup holds.
    BackupKind {
        /// A physical copy of the cluster (`pg_basebackup`), with the WAL to replay it to a
        /// point in time; restores into the same major version.
        Full = "full",
        /// `pg_dump` of each database; restores into any version.
        Logical = "logical",
    }
}

text_enum! {
    /// Where a store stands.
    StoreStatus {
        /// Its first nodes are being made.
        Deploying = "deploying",
        /// Every node runs.
        Available = "available",
        /// A job changes it (a size, a node, its parameters); it serves meanwhile.
        Modifying = "modifying",
        /// A node is not running; the store serves from what runs.
        Degraded = "degraded",
        /// Its creation failed; it can only be repaired or deleted.
        Failed = "failed",
        Deleting = "deleting",
        /// Gone; kept for its backups and the audit trail.
        Deleted = "deleted",
        /// A restore replaces its data; it does not serve meanwhile.
        Restoring = "restoring",
    }
}

text_enum! {
    /// Where one node of a store stands.
    NodeState {
        Creating = "creating",
        Running = "running",
        Stopped = "stopped",
        Failed = "failed",
        Removing = "removing",
    }
}

text_enum! {
    /// Where a job stands.
    JobStatus {
        /// Waiting for a worker (or for its next attempt).
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// Where a backup stands.
    BackupStatus {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

text_enum! {
    /// Where a VPC stands.
    VpcStatus {
        Creating = "creating",
        Available = "available",
        Deleting = "deleting",
        Failed = "failed",
        Deleted = "deleted",
    }
}

text_enum! {
    /// Where a peering between two VPCs stands.
    PeeringStatus {
        /// Asked by one organization of another's VPC; that organization answers.
        PendingAcceptance = "pending_acceptance",
        /// Accepted; the link is being made.
        Provisioning = "provisioning",
        Active = "active",
        Rejected = "rejected",
        Failed = "failed",
        Deleting = "deleting",
        Deleted = "deleted",
    }
}

impl JobStatus {
    /// Not finished: at most one such job per store.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

impl PeeringStatus {
    /// Accepted, so that a link exists or is being made or unmade.
    pub fn is_linked(self) -> bool {
        matches!(self, Self::Provisioning | Self::Active | Self::Deleting | Self::Failed)
    }
}

/// What can be asked of a store; whether its status allows it now is [`StoreStatus::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOperation {
    /// A new instance size or volume size.
    Resize,
    /// Add, remove or restart a node.
    ChangeNodes,
    /// Rebuild what does not run.
    Repair,
    /// Create or drop databases and database users, or rotate their passwords.
    ChangeDatabases,
    /// Apply a parameter group.
    ApplyParameters,
    TakeBackup,
    Restore,
    Delete,
    /// A planned change of primary.
    Switchover,
    /// A replica promoted because the primary is gone (or forced out).
    Failover,
}

impl StoreStatus {
    /// The one table of which operations each status allows; every entry point asks it.
    pub fn allows(self, op: StoreOperation) -> bool {
        use StoreOperation as Op;
        use StoreStatus as S;
        match op {
            Op::Resize | Op::ApplyParameters | Op::Restore => matches!(self, S::Available | S::Degraded),
            Op::ChangeNodes => {
                matches!(self, S::Available | S::Degraded | S::Modifying | S::Failed | S::Restoring)
            }
            Op::Repair => !matches!(self, S::Deleting | S::Deleted),
            Op::ChangeDatabases | Op::TakeBackup => matches!(self, S::Available | S::Degraded | S::Modifying),
            Op::Delete => !matches!(self, S::Deleting | S::Deleted),
            Op::Switchover => matches!(self, S::Available | S::Degraded),
            // Whatever else is under way: a store that has lost its primary needs one most.
            Op::Failover => !matches!(self, S::Deploying | S::Deleting | S::Deleted),
        }
    }

    /// [`Self::allows`] as an answer for the caller: a conflict naming the status when the
    /// table refuses, with the one code (`store_busy`) clients branch on.
    pub fn check(self, op: StoreOperation) -> Result<(), Error> {
        if self.allows(op) {
            Ok(())
        } else {
            Err(Error::conflict("store_busy", format!("the store is {self}")))
        }
    }

    /// A store that serves every node is available, one with a node down degraded.
    pub fn settled(every_node_runs: bool) -> Self {
        if every_node_runs { Self::Available } else { Self::Degraded }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_as_their_snake_case_names() {
        assert_eq!(serde_json::to_value(PeeringStatus::PendingAcceptance).unwrap(), "pending_acceptance");
        for s in StoreStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn the_table_of_store_operations() {
        use StoreOperation as Op;
        use StoreStatus as S;
        // Only a settled store is resized, restored or given parameters.
        for s in StoreStatus::ALL {
            assert_eq!(s.allows(Op::Resize), matches!(s, S::Available | S::Degraded), "{s}");
            assert_eq!(s.allows(Op::Restore), s.allows(Op::Resize), "{s}");
        }
        // Databases change while a job changes the store, never while it deploys or restores.
        assert!(S::Modifying.allows(Op::ChangeDatabases));
        assert!(!S::Restoring.allows(Op::ChangeDatabases));
        assert!(!S::Deploying.allows(Op::TakeBackup));
        // A failed store can be repaired, given nodes, or deleted, and nothing else.
        let failed: Vec<_> = [
            Op::Resize,
            Op::ChangeNodes,
            Op::Repair,
            Op::ChangeDatabases,
            Op::ApplyParameters,
            Op::TakeBackup,
            Op::Restore,
            Op::Delete,
            Op::Switchover,
            Op::Failover,
        ]
        .into_iter()
        .filter(|op| S::Failed.allows(*op))
        .collect();
        assert_eq!(failed, [Op::ChangeNodes, Op::Repair, Op::Delete, Op::Failover]);
        // Nothing is asked of a store on its way out.
        assert!(!S::Deleting.allows(Op::Delete) && !S::Deleted.allows(Op::Repair));
    }
}
