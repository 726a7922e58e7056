//! One OS user per store, when Berth runs as root: a store's servers, files, sockets and logs
//! belong to it alone, so that a process of one store (or a customer who escaped into one)
//! reaches nothing of another store, of the control database or of Berth.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::unistd::User;
use uuid::Uuid;

use crate::pg::RunAs;

/// Every store user of any Berth starts with this.
const PREFIX: &str = "berth-";
/// `useradd` and `userdel` lock `/etc/passwd`; another writer may hold it for a moment.
const LOCK_RETRIES: u32 = 20;
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct StoreUsers {
    /// This Berth's mark (see [`super::net::tag_for`]), in every user name it makes, so that
    /// several Berths on one host (or test processes) never take each other's users.
    tag: String,
    /// One `useradd`/`userdel` at a time from this process.
    lock: tokio::sync::Mutex<()>,
}

impl StoreUsers {
    pub fn new(root: &Path) -> Self {
        Self { tag: super::net::tag_for(root)[..8].to_owned(), lock: tokio::sync::Mutex::new(()) }
    }

    /// `berth-<tag>-<the last 16 hex digits of the store id>`: 31 characters, under the 32 that
    /// `useradd` takes; the end of a UUID (v4 or v7) is its random part.
    pub fn name(&self, store_id: Uuid) -> String {
        format!("{PREFIX}{}-{}", self.tag, &store_id.simple().to_string()[16..])
    }

    /// The store's user, if it exists.
    pub fn lookup(&self, store_id: Uuid) -> anyhow::Result<Option<RunAs>> {
        let name = self.name(store_id);
        Ok(User::from_name(&name).with_context(|| format!("looking up OS user {name}"))?.map(|u| RunAs {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }))
    }

    /// The store's user, made if it does not exist: a system user with a group of its own, no
    /// home and no login shell.
    pub async fn ensure(&self, store_id: Uuid) -> anyhow::Result<RunAs> {
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
            .arg(format!("Berth store {store_id}"))
            .arg(&name);
        retry_locked(cmd, "useradd").await.with_context(|| format!("making OS user {name}"))?;
        tracing::info!(%store_id, user = %name, "made the store's OS user");
        self.lookup(store_id)?.with_context(|| format!("OS user {name} vanished after useradd"))
    }

    /// Removes the store's user and its group; an absent one is already removed.
    pub async fn remove(&self, store_id: Uuid) -> anyhow::Result<()> {
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

    /// The names of this Berth's store users, from the user database.
    pub fn present(&self) -> anyhow::Result<Vec<String>> {
        let mine = format!("{PREFIX}{}-", self.tag);
        let text = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        Ok(text
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|n| n.starts_with(&mine))
            .map(str::to_owned)
            .collect())
    }

    /// Removes a user of this Berth by name (one no store knows any more).
    pub async fn remove_by_name(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            name.starts_with(&format!("{PREFIX}{}-", self.tag)),
            "{name} is not a store user of this Berth"
        );
        let _one = self.lock.lock().await;
        let mut cmd = tokio::process::Command::new("userdel");
        cmd.arg(name);
        retry_locked(cmd, "userdel").await.map(drop)
    }
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
pub fn chown_tree(path: &Path, owner: &RunAs) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.uid() != owner.uid || meta.gid() != owner.gid {
        std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {} to {}", path.display(), owner.name))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            chown_tree(&entry?.path(), owner)?;
        }
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
