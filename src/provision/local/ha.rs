//! High availability on the local driver: probing a node's replication, promoting, fencing,
//! and bringing a former primary back as a standby (`pg_rewind`, or a fresh copy).

use super::LocalDriver;
use crate::provision::{Lsn, NodeSpec, Rejoined, Replication};

impl LocalDriver {
    pub(super) async fn probe_replication(&self, _spec: &NodeSpec) -> anyhow::Result<Option<Replication>> {
        anyhow::bail!("replication probes are being built (issue 17)")
    }

    pub(super) async fn promote_node(&self, _spec: &NodeSpec) -> anyhow::Result<()> {
        anyhow::bail!("promotion is being built (issue 17)")
    }

    pub(super) async fn fence_node(&self, _spec: &NodeSpec) -> anyhow::Result<()> {
        anyhow::bail!("fencing is being built (issue 17)")
    }

    pub(super) async fn checkpoint_of_stopped(&self, _spec: &NodeSpec) -> anyhow::Result<Option<Lsn>> {
        anyhow::bail!("checkpoint reading is being built (issue 17)")
    }

    pub(super) async fn rejoin_node(&self, _spec: &NodeSpec, _source: &NodeSpec) -> anyhow::Result<Rejoined> {
        anyhow::bail!("rejoining is being built (issue 17)")
    }

    pub(super) async fn reconfigure_node(&self, _spec: &NodeSpec) -> anyhow::Result<()> {
        anyhow::bail!("reconfiguring is being built (issue 17)")
    }
}
