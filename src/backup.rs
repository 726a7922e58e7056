//! Where backups live. A local folder by default; the interface is the seam where an
//! S3-compatible store can be added (archives are written whole, then named, and read back by
//! key).

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct LocalBackupStore {
    root: PathBuf,
}

impl LocalBackupStore {
    /// Backups under `root` (`BERTH_BACKUP_DIR`), reachable by the PostgreSQL user, which writes
    /// archives and WAL there.
    pub fn new(root: PathBuf, run_as: Option<&crate::pg::RunAs>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let root = std::fs::canonicalize(&root)?;
        if let Some(run_as) = run_as {
            run_as.ensure_reachable(&root)?;
        }
        Ok(Self { root })
    }

    fn store_dir(&self, store_id: Uuid) -> PathBuf {
        self.root.join(store_id.to_string())
    }

    /// The store's archived WAL.
    pub fn wal_dir(&self, store_id: Uuid) -> PathBuf {
        self.store_dir(store_id).join("wal")
    }

    /// The key of a backup's archive.
    pub fn key(&self, store_id: Uuid, backup_id: Uuid) -> String {
        format!("{store_id}/{backup_id}.tar.gz")
    }

    /// Where the archive of `key` is on disk.
    pub fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(!key.contains(".."), "bad backup key");
        Ok(self.root.join(key))
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
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
