//! One OS user per store, when Berth runs as root: a store's servers, files, sockets and logs
//! belong to it alone, so that a process of one store (or a customer who escaped into one)
//! reaches nothing of another store, of the control database or of Berth.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::unistd::User;

use crate::domain::StoreId;
use crate::pg::RunAs;

/// Every store user of any Berth starts with this.
const PREFIX: &str = "berth-";
/// `useradd` and `userdel` lock `/etc/passwd`; another writer may hold it for a moment.
const LOCK_RETRIES: u32 = 20;
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct StoreUsers {
    /// Berth's data folder, written in each user's comment: a later Berth removes the users of
    /// data folders that are gone (their Berth can never come back for them).
    root: std::path::PathBuf,
    /// This Berth's mark (see [`super::net::tag_for`]), in every user name it makes, so that
    /// several Berths on one host (or test processes) never take each other's users.
    tag: String,
    /// One `useradd`/`userdel` at a time from this process.
    lock: tokio::sync::Mutex<()>,
}

impl StoreUsers {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            tag: super::net::tag_for(root)[..8].to_owned(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// `berth-<tag>-<the last 16 hex digits of the store id>`: 31 characters, under the 32 that
    /// `useradd` takes; the end of a UUID (v4 or v7) is its random part.
    pub fn name(&self, store_id: StoreId) -> String {
        format!("{PREFIX}{}-{}", self.tag, &store_id.0.simple().to_string()[16..])
    }

    /// The store's user, if it exists.
    pub fn lookup(&self, store_id: StoreId) -> anyhow::Result<Option<RunAs>> {
        let name = self.name(store_id);
        Ok(User::from_name(&name).with_context(|| format!("looking up OS user {name}"))?.map(|u| RunAs {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }))
    }

    /// The store's user, made if it does not exist: a system user with a group of its own, no
    /// home and no login shell.
    pub async fn ensure(&self, store_id: StoreId) -> anyhow::Result<RunAs> {
        if let Some(user) = self.lookup(store_id)? {
            return Ok(user);
        }
        let _one = self.lock.lock().await;
        if let Some(user) = self.lookup(store_id)? {
            return Ok(user);
        }
        let name = self.name(store_id);
        let mut cmd = tokio::process::Command::new("useradd");
        cmd.args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/usr/sbin/nologin", "--comment"])
            .arg(comment(store_id, &self.root))
            .arg(&name);
        retry_locked(cmd, "useradd").await.with_context(|| format!("making OS user {name}"))?;
        tracing::info!(%store_id, user = %name, "made the store's OS user");
        self.lookup(store_id)?.with_context(|| format!("OS user {name} vanished after useradd"))
    }

    /// Removes the store's user and its group; an absent one is already removed.
    pub async fn remove(&self, store_id: StoreId) -> anyhow::Result<()> {
        let _one = self.lock.lock().await;
        if self.lookup(store_id)?.is_none() {
            return Ok(());
        }
        let name = self.name(store_id);
        let mut cmd = tokio::process::Command::new("userdel");
        cmd.arg(&name);
        retry_locked(cmd, "userdel").await.with_context(|| format!("removing OS user {name}"))?;
        tracing::info!(%store_id, user = %name, "removed the store's OS user");
        Ok(())
    }

    /// Removes the store users no Berth can come back for: this Berth's whose store it no longer
    /// knows and whose folder is gone, and any Berth's whose data folder is gone (what a removal of
    /// it left for its mounted volumes is gone by then: see `volume::unmount_orphans`). Returns their
    /// names, for the log.
    pub async fn retain(
        &self,
        known: &HashSet<StoreId>,
        store_dir: impl Fn(StoreId) -> PathBuf,
    ) -> anyhow::Result<Vec<String>> {
        let text = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        let mine = format!("{PREFIX}{}-", self.tag);
        let mut removed = vec![];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let (Some(name), Some(gecos)) = (fields.first(), fields.get(4)) else { continue };
            let Some((store_id, root)) = parse_comment(gecos).filter(|_| name.starts_with(PREFIX)) else {
                continue;
            };
            let orphan = if name.starts_with(&mine) {
                !known.contains(&store_id) && !store_dir(store_id).exists()
            } else {
                root.is_some_and(|r| !r.exists())
            };
            if orphan {
                let _one = self.lock.lock().await;
                let mut cmd = tokio::process::Command::new("userdel");
                cmd.arg(name);
                retry_locked(cmd, "userdel").await?;
                removed.push((*name).to_owned());
            }
        }
        Ok(removed)
    }
}

/// `Berth store <id> in <data folder>`; the folder left out where the user database could not
/// hold it.
fn comment(store_id: StoreId, root: &Path) -> String {
    let root = root.to_string_lossy();
    if root.contains([':', ',', '\n']) {
        format!("Berth store {store_id}")
    } else {
        format!("Berth store {store_id} in {root}")
    }
}

fn parse_comment(gecos: &str) -> Option<(StoreId, Option<PathBuf>)> {
    let rest = gecos.strip_prefix("Berth store ")?;
    let (id, root) = match rest.split_once(" in ") {
        Some((id, root)) => (id, Some(PathBuf::from(root))),
        None => (rest, None),
    };
    Some((id.parse().ok()?, root))
}

/// Runs a user-database tool, again while another holds the lock on `/etc/passwd` (exit 10 for
/// `useradd` and `userdel`, with "cannot lock" on stderr).
async fn retry_locked(mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    for attempt in 0.. {
        let out = tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("{what} did not finish within {} s", TOOL_TIMEOUT.as_secs()))?
            .with_context(|| format!("running {what} (from the passwd package)"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("lock") && attempt < LOCK_RETRIES {
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
            continue;
        }
        bail!("{what} failed ({}): {}", out.status, stderr.trim());
    }
    unreachable!()
}

/// Gives `path` and everything below it to `owner` (links themselves, never what they point to).
/// A folder changes owner after everything in it: if this is interrupted, a folder that has its
/// new owner is complete, and a retry that checks the top finds the work unfinished.
pub fn chown_tree(path: &Path, owner: &RunAs) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    if meta.uid() != owner.uid || meta.gid() != owner.gid {
        std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {} to {}", path.display(), owner.name))?;
    }
    Ok(())
}

/// The owner of `path`, as a [`RunAs`] (named after the user database, or by uid if it has none).
pub fn owner_of(path: &Path) -> Option<RunAs> {
    let meta = std::fs::metadata(path).ok()?;
    let name = User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    Some(RunAs { name, uid: meta.uid(), gid: meta.gid() })
}
