//! Where backups live, behind [`BackupStore`]. A local folder by default; an S3-compatible
//! object store fits the same trait: archives are written whole to a local file and then
//! committed under a key, read back as a local file, and archived WAL is spooled to a folder
//! that the store keeps.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::domain::{BackupId, StoreId};

/// One archived WAL segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSegment {
    /// The 24-hex-digit segment name: timeline, then log and segment number.
    pub name: String,
    /// When it was archived.
    pub archived_at: SystemTime,
}

impl WalSegment {
    /// The position of the segment in the WAL, whatever its timeline.
    pub fn number(&self) -> Option<u64> {
        segment_number(&self.name)
    }
}

#[async_trait]
pub trait BackupStore: Send + Sync + Debug + 'static {
    /// The key of a backup's archive.
    fn key(&self, store_id: StoreId, backup_id: BackupId) -> String {
        format!("{store_id}/{backup_id}.tar.gz")
    }

    /// A local file for a driver to write the archive of `key` to, whole or not at all
    /// (written aside, then renamed); [`BackupStore::commit`] then keeps it.
    async fn writable(&self, key: &str) -> anyhow::Result<PathBuf>;

    /// Keeps the archive written to `writable(key)`.
    async fn commit(&self, key: &str) -> anyhow::Result<()>;

    /// A local file holding the archive of `key`, to checksum, stream or restore from.
    async fn readable(&self, key: &str) -> anyhow::Result<PathBuf>;

    /// Removes an archive; an absent one is already removed.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;

    /// The local folder a store's nodes archive their WAL to (`archive_command`), and that
    /// restores read it from (`restore_command`).
    fn wal_dir(&self, store_id: StoreId) -> PathBuf;

    /// The store's archived WAL segments, in WAL order.
    async fn wal_segments(&self, store_id: StoreId) -> anyhow::Result<Vec<WalSegment>>;

    /// Removes the archived segments before the one holding `lsn` (no restore can need them
    /// once no backup starts earlier). Returns how many went.
    async fn prune_wal(&self, store_id: StoreId, lsn: &str) -> anyhow::Result<usize>;

    /// Removes everything kept for a store: its archives and its WAL.
    async fn remove_store(&self, store_id: StoreId) -> anyhow::Result<()>;
}

/// Backups in a local folder (`BERTH_BACKUP_DIR`): `<store>/<backup>.tar.gz` and `<store>/wal/`.
#[derive(Debug, Clone)]
pub struct LocalBackupStore {
    root: PathBuf,
}

impl LocalBackupStore {
    /// Backups under `root`. The servers write archives and WAL there, each store in a folder
    /// of its own: with an OS user per store, every store's user passes through `root` (never
    /// lists it) into its own folder, private to it.
    pub fn new(root: PathBuf, isolation: &crate::provision::Isolation) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let root = std::fs::canonicalize(&root)?;
        if isolation.os_users == crate::provision::OsUsers::PerStore {
            // Not listable: a store's user has no business learning the other stores' ids.
            std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
            crate::pg::RunAs::others().ensure_reachable(&root)?;
        }
        Ok(Self { root })
    }

    fn store_dir(&self, store_id: StoreId) -> PathBuf {
        self.root.join(store_id.to_string())
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(!key.contains("..") && !key.starts_with('/'), "bad backup key");
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl BackupStore for LocalBackupStore {
    async fn writable(&self, key: &str) -> anyhow::Result<PathBuf> {
        self.path(key)
    }

    async fn commit(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        anyhow::ensure!(path.exists(), "no archive was written to {}", path.display());
        Ok(())
    }

    async fn readable(&self, key: &str) -> anyhow::Result<PathBuf> {
        self.path(key)
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn wal_dir(&self, store_id: StoreId) -> PathBuf {
        self.store_dir(store_id).join("wal")
    }

    async fn wal_segments(&self, store_id: StoreId) -> anyhow::Result<Vec<WalSegment>> {
        let dir = self.wal_dir(store_id);
        tokio::task::spawn_blocking(move || {
            let mut out = vec![];
            let entries = match std::fs::read_dir(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                other => other.with_context(|| format!("listing {}", dir.display()))?,
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if segment_number(&name).is_none() {
                    continue;
                }
                let archived_at = entry.metadata()?.modified()?;
                out.push(WalSegment { name, archived_at });
            }
            out.sort_by_key(|s| (s.number(), s.name.clone()));
            Ok(out)
        })
        .await?
    }

    async fn prune_wal(&self, store_id: StoreId, lsn: &str) -> anyhow::Result<usize> {
        let keep_from = lsn_segment(lsn).with_context(|| format!("{lsn:?} is not an LSN"))?;
        let dir = self.wal_dir(store_id);
        let mut pruned = 0;
        for s in self.wal_segments(store_id).await? {
            if s.number().is_some_and(|n| n < keep_from) {
                match tokio::fs::remove_file(dir.join(&s.name)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => pruned += 1,
                }
            }
        }
        Ok(pruned)
    }

    async fn remove_store(&self, store_id: StoreId) -> anyhow::Result<()> {
        match tokio::fs::remove_dir_all(self.store_dir(store_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// WAL segments are 16 MiB (PostgreSQL's default, which the local driver keeps): 256 to a
/// "log" of 4 GiB.
const SEGMENT_BITS: u32 = 24;

/// The segment number in a WAL file name (`TTTTTTTTLLLLLLLLSSSSSSSS`), ignoring the timeline.
fn segment_number(name: &str) -> Option<u64> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log << (32 - SEGMENT_BITS) | seg)
}

/// The number of the segment holding `lsn` (`X/Y`).
pub fn lsn_segment(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    let value = u64::from_str_radix(hi, 16).ok()? << 32 | u64::from_str_radix(lo, 16).ok()?;
    Some(value >> SEGMENT_BITS)
}

/// Size and SHA-256 (hex) of a file, read in full.
pub async fn checksum(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::{lsn_segment, segment_number};

    #[test]
    fn segments_and_lsns_agree() {
        assert_eq!(segment_number("000000010000000000000003"), Some(3));
        assert_eq!(segment_number("0000000200000001000000FF"), Some(511));
        assert_eq!(segment_number("00000001.history"), None);
        assert_eq!(segment_number("000000010000000000000003.00000028.backup"), None);
        assert_eq!(lsn_segment("0/3000028"), Some(3));
        assert_eq!(lsn_segment("1/FF000000"), Some(511));
        assert_eq!(lsn_segment("nope"), None);
    }
}
