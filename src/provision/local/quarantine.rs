//! Nodes no store knows are never deleted on a guess: a lost or wrong control database must not
//! cost a customer their data. Such a node is stopped and moved, untouched, to
//! `BERTH_DATA_DIR/quarantine/<when>/stores/<store>/<node>` (its volume, if it has one, to
//! `quarantine/<when>/volumes/<node>.img`, mounted read-only there), where a person can look at
//! it, take it back, or remove it on purpose (`berth quarantine purge`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use time::OffsetDateTime;
use uuid::Uuid;

use super::volume::Volume;
use crate::domain::{NodeId, StoreId};
use crate::provision::Quarantined;

/// `20261202T071500Z`: sorts by time, and is a file name everywhere.
const WHEN: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// The quarantine folder under a Berth's data folder.
pub struct Quarantine {
    root: PathBuf,
}

impl Quarantine {
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.join("quarantine") }
    }

    /// A new entry's folder for a node set aside now: `<when>/stores/<store>/<node>`, and where
    /// its volume goes.
    pub fn place(
        &self,
        store_id: StoreId,
        node_id: NodeId,
        now: OffsetDateTime,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let when = now.to_offset(time::UtcOffset::UTC).format(WHEN)?;
        std::fs::create_dir_all(&self.root)?;
        // Root's alone: nothing of a store's OS user reaches in, whatever uid it had.
        std::fs::set_permissions(&self.root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let entry = self.root.join(&when);
        let dir = entry.join("stores").join(store_id.to_string()).join(node_id.to_string());
        std::fs::create_dir_all(dir.parent().context("no parent")?)?;
        std::fs::create_dir_all(entry.join("volumes"))?;
        Ok((dir, entry.join("volumes").join(format!("{node_id}.img"))))
    }

    /// Everything in quarantine, oldest first.
    pub fn list(&self) -> anyhow::Result<Vec<Quarantined>> {
        let mut out = vec![];
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Ok(out) };
        let mut whens: Vec<_> = entries.flatten().filter(|e| e.path().is_dir()).collect();
        whens.sort_by_key(|e| e.file_name());
        for entry in whens {
            let when = entry.file_name().to_string_lossy().into_owned();
            let Ok(at) = time::PrimitiveDateTime::parse(&when, WHEN) else { continue };
            for store in read_uuids(&entry.path().join("stores")) {
                for node in read_uuids(&entry.path().join("stores").join(store.to_string())) {
                    let path = entry.path().join("stores").join(store.to_string()).join(node.to_string());
                    let image = entry.path().join("volumes").join(format!("{node}.img"));
                    let volume = image.is_file().then(|| image.to_string_lossy().into_owned());
                    let size_bytes = if image.is_file() { allocated(&image) } else { tree_size(&path) };
                    out.push(Quarantined {
                        id: format!("{when}-{node}"),
                        store_id: store.into(),
                        node_id: node.into(),
                        path: path.to_string_lossy().into_owned(),
                        volume,
                        size_bytes,
                        quarantined_at: at.assume_utc(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Removes one entry for good: its folder, and its volume (unmounted first).
    pub async fn purge(&self, id: &str) -> anyhow::Result<Quarantined> {
        let Some(q) = self.list()?.into_iter().find(|q| q.id == id) else {
            bail!("nothing in quarantine has the id {id:?} (`berth quarantine list` shows what there is)");
        };
        let path = PathBuf::from(&q.path);
        if let Some(image) = &q.volume {
            Volume { image: image.into(), mount_point: path.clone() }.remove().await?;
        }
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
        // The entry's folders go once empty: the store's, `stores/`, `volumes/`, the entry.
        let entry = path.ancestors().nth(3).map(Path::to_owned).unwrap_or_default();
        for dir in [
            path.parent().map(Path::to_owned).unwrap_or_default(),
            entry.join("stores"),
            entry.join("volumes"),
            entry,
        ] {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(q)
    }
}

fn read_uuids(dir: &Path) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort();
    out
}

/// The bytes a file takes on disk (a sparse image: what was written).
fn allocated(file: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).map(|m| m.blocks() * 512).unwrap_or(0)
}

fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| tree_size(&e.path())).sum()
}
