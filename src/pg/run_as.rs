use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid, User, chown};

/// The unprivileged user PostgreSQL runs as when Berth runs as root.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when Berth does not run as root: then PostgreSQL simply runs as the same user.
    pub fn when_root(user: &str) -> anyhow::Result<Option<Self>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let u = User::from_name(user)
            .with_context(|| format!("looking up OS user {user:?}"))?
            .with_context(|| {
                format!(
                    "Berth runs as root and PostgreSQL refuses to: it runs PostgreSQL as BERTH_PG_USER={user:?}, \
                     which does not exist. Create it (`useradd --system {user}`) or name another unprivileged user."
                )
            })?;
        if u.uid.is_root() {
            bail!("BERTH_PG_USER={user:?} is root; name an unprivileged user");
        }
        Ok(Some(Self { name: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw() }))
    }

    /// Root, to hand files back to Berth itself.
    pub fn root() -> Self {
        Self { name: "root".into(), uid: 0, gid: 0 }
    }

    /// Any unprivileged user that owns nothing here (every store's own user): for checking that
    /// a folder can be passed through by all of them.
    pub fn others() -> Self {
        Self { name: "the stores' OS users".into(), uid: u32::MAX - 1, gid: u32::MAX - 1 }
    }

    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    pub fn give(&self, path: &Path) -> anyhow::Result<()> {
        chown(path, Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
            .with_context(|| format!("chown {} to {}", path.display(), self.name))
    }

    /// Makes sure this user can reach `dir`: the folder itself (Berth's own) is made traversable
    /// (`o+x`, not listable); an ancestor that is not is named in the error, since Berth has no
    /// business changing it.
    pub fn ensure_reachable(&self, dir: &Path) -> anyhow::Result<()> {
        let meta = std::fs::metadata(dir)?;
        if !self.can_traverse(&meta) {
            let mut perms = meta.permissions();
            perms.set_mode(perms.mode() | 0o001);
            std::fs::set_permissions(dir, perms)
                .with_context(|| format!("making {} traversable", dir.display()))?;
        }
        for ancestor in dir.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor)?;
            if !self.can_traverse(&meta) {
                bail!(
                    "PostgreSQL runs as {user:?} and cannot reach {dir}: {anc} is not traversable by it. \
                     Run `chmod o+x {anc}`, or set BERTH_DATA_DIR to a folder {user:?} can reach (e.g. /var/lib/berth).",
                    user = self.name,
                    dir = dir.display(),
                    anc = ancestor.display()
                );
            }
        }
        Ok(())
    }

    fn can_traverse(&self, meta: &std::fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}
