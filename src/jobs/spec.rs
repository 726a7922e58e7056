//! A node's spec as the driver needs it, read from the tables: the store's settings, its
//! secrets decrypted, its network, and the access in force.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use super::network;
use crate::db;
use crate::domain::ha::SyncMode;
use crate::domain::{NodeId, NodeRole, NodeState, OrgId, StoreId};
use crate::provision::{DataPlane, Duty, NodeSpec, Upstream};

impl DataPlane {
    /// The driver's spec of a node at `now`, with the store's secrets decrypted and the firewall
    /// rules in force. A private store with no rules admits its VPC and the VPCs actively peered
    /// with it; with rules, exactly what they allow.
    pub async fn node_spec(
        &self,
        db: &sqlx::PgPool,
        org_id: OrgId,
        store_id: StoreId,
        node_id: NodeId,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<Option<NodeSpec>> {
        let Some(store) = db::stores::get_by_id(db, org_id, store_id).await? else { return Ok(None) };
        let nodes = db::stores::nodes(db, org_id, &[store_id]).await?;
        let Some(node) = nodes.iter().find(|n| n.id == node_id) else { return Ok(None) };
        let secrets = db::stores::secrets(db, org_id, store_id).await?.context("store secrets")?;
        let settings = self
            .catalog
            .settings(&store.instance_size)
            .with_context(|| format!("instance size {} is no longer in the catalog", store.instance_size))?;
        let network = match store.vpc_id {
            Some(vpc_id) => Some(network::node_network(db, org_id, vpc_id, &node.host).await?),
            None => None,
        };
        let mut access = db::firewall::sources(db, org_id, store_id, now).await?;
        if let (Some(vpc_id), true) = (store.vpc_id, access.is_empty()) {
            access = db::vpcs::default_sources(db, org_id, vpc_id).await?;
        }
        let reveal = |blob: &[u8]| -> anyhow::Result<SecretString> {
            let plain = self.master_key.decrypt(blob, store_id.as_bytes())?;
            Ok(SecretString::from(String::from_utf8(plain).context("password is not UTF-8")?))
        };
        let sync = db::ha::get(db, org_id, store_id).await?.map_or(SyncMode::Off, |h| h.settings.synchronous);
        let duty = duty_of(node, &nodes, sync);
        Ok(Some(NodeSpec {
            store_id,
            node_id,
            version: store.version.clone(),
            port: u16::try_from(node.port).context("port out of range")?,
            settings,
            volume_size_gb: u32::try_from(store.volume_size_gb).context("volume size out of range")?,
            admin_user: store.admin_user.clone(),
            admin_password: reveal(&secrets.admin_password_enc)?,
            database: store.database_name.clone(),
            replication_password: reveal(&secrets.replication_password_enc)?,
            access,
            user_hosts: db::db_users::host_restrictions(db, org_id, store_id).await?,
            tls: Some(self.node_tls(db, org_id, &node.host, now).await?),
            wal_archive: Some(self.backups.wal_dir(store_id)),
            network,
            duty,
        }))
    }

    /// Enough of a node's spec to reach it over Berth's administrative path and ask how it is:
    /// no secrets decrypted and no certificate issued, for the health checks and the statistics
    /// that visit every node every few seconds.
    pub fn probe_spec(&self, node: &db::stores::NodeRow) -> anyhow::Result<NodeSpec> {
        Ok(NodeSpec {
            port: u16::try_from(node.port).context("port out of range")?,
            ..NodeSpec::bare(node.store_id, node.id)
        })
    }

    /// The organization's CA (certificate PEM and key), made on first use.
    pub async fn org_ca(
        &self,
        db: &sqlx::PgPool,
        org_id: OrgId,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<(String, SecretString)> {
        if db::org_cas::get(db, org_id).await?.is_none() {
            let (cert, key) = crate::tls::new_ca(org_id, now)?;
            let sealed = self.master_key.encrypt(key.expose_secret().as_bytes(), org_id.as_bytes());
            db::org_cas::insert_if_absent(db, org_id, &cert, &sealed, now).await?;
        }
        let ca = db::org_cas::get(db, org_id).await?.context("the CA vanished")?;
        let key = self.master_key.decrypt(&ca.key_enc, org_id.as_bytes())?;
        Ok((ca.cert_pem, SecretString::from(String::from_utf8(key).context("CA key is not UTF-8")?)))
    }

    async fn node_tls(
        &self,
        db: &sqlx::PgPool,
        org_id: OrgId,
        host: &str,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<crate::provision::NodeTls> {
        let (_, ca_key) = self.org_ca(db, org_id, now).await?;
        let hosts: Vec<&str> = if host == "127.0.0.1" { vec!["localhost", host] } else { vec![host] };
        let (cert_pem, key_pem) = crate::tls::issue_server_cert(org_id, &ca_key, &hosts, now)?;
        Ok(crate::provision::NodeTls { cert_pem, key_pem })
    }
}

/// What the tables say the node is: the primary of the store's current timeline (unless a
/// failover or switchover fenced it), or a standby of that primary. The one place the fencing
/// rule is decided: only the node this names `Primary` ever starts read-write.
fn duty_of(node: &db::stores::NodeRow, nodes: &[db::stores::NodeRow], sync: SyncMode) -> Duty {
    let primary = nodes.iter().find(|n| n.role == NodeRole::Primary && !n.fenced);
    if primary.is_some_and(|p| p.id == node.id) {
        let replicas: Vec<NodeId> = nodes
            .iter()
            .filter(|n| n.role == NodeRole::Replica && !n.fenced && n.state != NodeState::Removing)
            .map(|n| n.id)
            .collect();
        return Duty::Primary { synchronous_standby_names: sync.standby_names(&replicas) };
    }
    let upstream = primary.and_then(|p| {
        Some(Upstream { node_id: p.id, host: p.host.clone(), port: u16::try_from(p.port).ok()? })
    });
    Duty::Standby { upstream }
}
