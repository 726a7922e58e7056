//! Where a node lives on the host, when Berth runs as root: the store's OS user, its private
//! folders, the node's volume; and how a node left by an older layout (one OS user for every
//! store, no volumes, sockets elsewhere) is moved over, its data kept.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, bail};
use uuid::Uuid;

use super::users::{chown_tree, owner_of};
use super::volume::Volume;
use super::{BASEBACKUP_TIMEOUT, LocalDriver, REPLACED};
use crate::pg::{RunAs, Server};
use crate::provision::NodeSpec;

impl LocalDriver {
    /// The node's server with everything it needs on the host: as root, the store's OS user,
    /// its private store folder and the node's volume. A node left by an older layout (another
    /// OS user, no volume, its socket elsewhere) is stopped and moved over first, its data kept.
    pub(super) async fn prepared(&self, spec: &NodeSpec) -> anyhow::Result<Server> {
        let mut server = self.server(spec)?;
        let node_dir = self.node_dir(spec.store_id, spec.node_id);
        let store_dir = self.store_dir(spec.store_id);
        std::fs::create_dir_all(&store_dir).with_context(|| format!("creating {}", store_dir.display()))?;
        let user = match &self.users {
            Some(users) => Some(users.ensure(spec.store_id).await?),
            None => None,
        };
        self.stop_if_misplaced(&server, user.as_ref()).await?;
        if let Some(user) = user {
            if owner_of(&server.pgdata).is_some_and(|o| o.uid != user.uid) {
                // Data of another user (an older Berth ran every store as one): stopped above.
                tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id, user = %user.name,
                    "giving a node's data to its store's own OS user");
                chown_tree(&node_dir, &user)?;
            }
            server.run_as = Some(user.clone());
            server.private_dir(&store_dir)?;
            self.ensure_volume(spec, &server, &user).await?;
        }
        server.private_dir(&node_dir)?;
        server.private_dir(&server.socket_dir)?;
        remove_replaced(&node_dir);
        Ok(server)
    }

    /// A server started by an older layout (with another socket folder, or as another OS user
    /// than its store's) is stopped, to be started again the right way; its old socket folder goes.
    async fn stop_if_misplaced(&self, server: &Server, user: Option<&RunAs>) -> anyhow::Result<()> {
        if let Some(pid) = server.postmaster_pid() {
            let pid_file = std::fs::read_to_string(server.pgdata.join("postmaster.pid")).unwrap_or_default();
            // Line 5 of postmaster.pid: the socket folder.
            let socket = pid_file.lines().nth(4).unwrap_or_default().trim().to_owned();
            let runs_as = std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| MetadataExt::uid(&m));
            let wrong_user = user.is_some_and(|u| runs_as.is_some_and(|r| r != u.uid));
            if socket != server.socket_dir.to_string_lossy() || wrong_user {
                tracing::warn!(pgdata = %server.pgdata.display(), "restarting a node started by an older layout");
                let owner = owner_of(&server.pgdata).filter(|o| o.uid != 0);
                Server { run_as: owner, ..server.clone() }.stop("fast").await?;
            }
        }
        if let Some(node_id) =
            server.pgdata.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()?.parse::<Uuid>().ok())
        {
            let old = self.old_socket_dir(node_id.into());
            if old != server.socket_dir {
                ignore_not_found(std::fs::remove_dir_all(&old))
                    .with_context(|| format!("removing {}", old.display()))?;
            }
        }
        Ok(())
    }

    /// Grows a mounted volume to the store's size: online, or where the host refuses that, with
    /// the node stopped for the moment it takes.
    pub(super) async fn grow_mounted(
        &self,
        spec: &NodeSpec,
        server: &Server,
        user: &RunAs,
    ) -> anyhow::Result<()> {
        let volume = self.volume(spec.store_id, spec.node_id);
        if volume.grow_online(spec.volume_size_gb).await? {
            return Ok(());
        }
        tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id,
            "this host refuses to grow a mounted filesystem (no CAP_SYS_RESOURCE?): the node stops while its volume grows");
        let running = server.postmaster_pid().is_some();
        server.stop("fast").await?;
        volume.unmount().await?;
        volume.ensure(spec.volume_size_gb, user).await?;
        if running {
            self.run_node(server, spec).await?;
        }
        Ok(())
    }

    /// As root: the node's folder is the mount point of its volume, of the store's volume size.
    /// A node with data on Berth's own disk (made before volumes) is copied onto a new volume
    /// while stopped, the original kept until the copy is whole; if it does not fit, it stays
    /// where it is, and the log says so.
    async fn ensure_volume(&self, spec: &NodeSpec, server: &Server, user: &RunAs) -> anyhow::Result<()> {
        let volume = self.volume(spec.store_id, spec.node_id);
        if volume.mounted() {
            return self.grow_mounted(spec, server, user).await;
        }
        let dir = &volume.mount_point;
        let has_data = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if !has_data {
            return volume.ensure(spec.volume_size_gb, user).await;
        }
        if volume.image.exists() {
            bail!(
                "{} holds files while the node's volume {} is not mounted on it; Berth touches neither: \
                 move the files away (or the image, if they are the node's data) and start the node again",
                dir.display(),
                volume.image.display()
            );
        }
        // Made before volumes: copied onto a volume assembled under other names.
        self.existing_server(spec).stop("fast").await?;
        let staging = Volume {
            image: volume.image.with_extension("img.migrating"),
            mount_point: volume.image.with_extension("mnt"),
        };
        staging.remove().await?;
        staging.ensure(spec.volume_size_gb, user).await?;
        let mut cp = tokio::process::Command::new("cp");
        cp.arg("-a").arg(format!("{}/.", dir.display())).arg(&staging.mount_point);
        let copied = crate::pg::run_for(cp, "cp", BASEBACKUP_TIMEOUT).await;
        staging.unmount().await?;
        if let Err(e) = copied {
            staging.remove().await?;
            tracing::error!(store_id = %spec.store_id, node_id = %spec.node_id, error = %format!("{e:#}"),
                "the node's data does not fit a volume of the store's size: it stays on Berth's disk, its size not enforced");
            return Ok(());
        }
        // The image first: a crash after it leaves both copies for a person, never neither.
        std::fs::rename(&staging.image, &volume.image)?;
        let aside = dir.with_extension("before-volume");
        std::fs::rename(dir, &aside)?;
        volume.ensure(spec.volume_size_gb, user).await?;
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(aside));
        tracing::info!(store_id = %spec.store_id, node_id = %spec.node_id, "moved a node onto a volume of its own");
        Ok(())
    }
}

/// Data a restore replaced goes in the background once the restored node serves; a Berth
/// killed before it was gone leaves it on the node's volume, taking room the store pays for.
/// Whatever is left goes the next time the node is prepared (every start).
fn remove_replaced(node_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(node_dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(REPLACED) {
            let path = entry.path();
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path));
        }
    }
}

pub(super) fn ignore_not_found(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A store's folder (and its sockets' folder) go with its last node; `Ok(true)` when they went.
pub(super) fn remove_store_dir_if_empty(store_dir: &Path, socket_dir: &Path) -> anyhow::Result<bool> {
    let nodes_left = match std::fs::read_dir(store_dir) {
        Ok(entries) => entries.flatten().any(|e| parse_uuid(&e).is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("listing {}", store_dir.display())),
    };
    if nodes_left {
        return Ok(false);
    }
    for dir in [store_dir, socket_dir] {
        ignore_not_found(std::fs::remove_dir_all(dir))
            .with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(true)
}

pub(super) fn parse_uuid(entry: &std::fs::DirEntry) -> Option<Uuid> {
    entry.file_type().ok()?.is_dir().then_some(())?;
    entry.file_name().to_str()?.parse().ok()
}
