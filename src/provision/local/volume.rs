//! A node's volume, when Berth runs as root: an ext4 filesystem in a sparse image file of the
//! store's `volume_size`, loop-mounted on the node's folder. A node that fills it fails its own
//! writes with PostgreSQL's own error; the host, the control database and other stores go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::pg::RunAs;

const GIB: u64 = 1024 * 1024 * 1024;
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Below this much free space (or 2 % of the volume, whichever is more) a volume is full: a
/// server needs room for its next WAL segment to go on accepting writes.
const FULL_BELOW_BYTES: u64 = 32 * 1024 * 1024;

/// How much of a volume is used, as `statvfs` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

impl Usage {
    pub fn full(&self) -> bool {
        self.available_bytes < FULL_BELOW_BYTES.max(self.size_bytes / 50)
    }
}

/// The image file of a node's volume, and where it is mounted.
#[derive(Debug, Clone)]
pub struct Volume {
    pub image: PathBuf,
    pub mount_point: PathBuf,
}

impl Volume {
    /// Whether something is mounted on the mount point (its device differs from its parent's).
    pub fn mounted(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(dir), Some(Ok(parent))) =
            (std::fs::metadata(&self.mount_point), self.mount_point.parent().map(std::fs::metadata))
        else {
            return false;
        };
        dir.dev() != parent.dev()
    }

    /// Makes the image (`size_gib`, sparse: it takes only what is written) with a filesystem whose
    /// root belongs to `owner`, unless it exists; mounts it unless it is mounted, grown first if it
    /// is smaller than `size_gib`. Idempotent; the mount point must be empty when it is not mounted.
    pub async fn ensure(&self, size_gib: u32, owner: &RunAs) -> anyhow::Result<()> {
        let size = bytes(size_gib);
        if !self.image.is_file() {
            let parent = self.image.parent().context("image without a folder")?;
            std::fs::create_dir_all(parent)?;
            // Assembled under another name: an image with a complete filesystem or none at all.
            let partial = self.image.with_extension("img.partial");
            let file =
                std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
            file.set_len(size)?;
            drop(file);
            let mut mkfs = tokio::process::Command::new("mkfs.ext4");
            mkfs.args(["-q", "-F", "-m", "0", "-E"])
                .arg(format!(
                    "root_owner={}:{},lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                    owner.uid, owner.gid
                ))
                .arg(&partial);
            tool(mkfs, "mkfs.ext4").await?;
            std::fs::rename(&partial, &self.image)?;
        }
        if !self.mounted() {
            self.grow_offline(size_gib).await?;
            self.mount("loop,nodev,nosuid,noexec").await?;
        }
        Ok(())
    }

    /// Mounts the image as it is, read-only: for a person to look at, nothing written.
    pub async fn mount_read_only(&self) -> anyhow::Result<()> {
        self.mount("loop,ro,noload,nodev,nosuid,noexec").await
    }

    async fn mount(&self, options: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.mount_point)?;
        let mut mount = tokio::process::Command::new("mount");
        mount.args(["-t", "ext4", "-o", options]).arg(&self.image).arg(&self.mount_point);
        tool(mount, "mount").await
    }

    /// Grows the mounted image and its filesystem to `size_gib` if it is smaller, online. Never
    /// shrinks. `Ok(false)`: this host refuses online resizing (a container without
    /// CAP_SYS_RESOURCE, say): unmount it and [`Volume::ensure`] grows it before mounting.
    pub async fn grow_online(&self, size_gib: u32) -> anyhow::Result<bool> {
        let size = bytes(size_gib);
        let device = self.device()?;
        // The filesystem's size, not the image's: a grow that died between the two is finished.
        if filesystem_bytes(Path::new(&device)).await? >= size {
            return Ok(true);
        }
        let image = std::fs::OpenOptions::new().write(true).open(&self.image)?;
        if image.metadata()?.len() < size {
            image.set_len(size)?;
        }
        let mut losetup = tokio::process::Command::new("losetup");
        losetup.arg("--set-capacity").arg(&device);
        tool(losetup, "losetup --set-capacity").await?;
        let mut resize = tokio::process::Command::new("resize2fs");
        resize.arg(&device);
        match tool(resize, "resize2fs").await {
            Ok(()) => {
                tracing::info!(image = %self.image.display(), size_gib, "grew a volume online");
                Ok(true)
            }
            Err(e) if e.to_string().contains("Permission denied to resize") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Grows the unmounted image's filesystem to `size_gib` if it is smaller (after the check
    /// that resize2fs insists on).
    async fn grow_offline(&self, size_gib: u32) -> anyhow::Result<()> {
        let size = bytes(size_gib);
        let image = std::fs::OpenOptions::new().write(true).open(&self.image)?;
        let fs_size = filesystem_bytes(&self.image).await?;
        if fs_size >= size {
            return Ok(());
        }
        if image.metadata()?.len() < size {
            image.set_len(size)?;
        }
        let mut fsck = tokio::process::Command::new("e2fsck");
        fsck.args(["-f", "-p"]).arg(&self.image);
        // 1: errors corrected; anything above is a filesystem a person must look at.
        if let Err(e) = tool(fsck, "e2fsck").await {
            if !e.to_string().contains("exit status: 1)") {
                return Err(e);
            }
        }
        let mut resize = tokio::process::Command::new("resize2fs");
        resize.arg(&self.image);
        tool(resize, "resize2fs").await?;
        tracing::info!(image = %self.image.display(), size_gib, "grew a volume");
        Ok(())
    }

    /// The loop device the image is mounted from, from the kernel's mount table.
    fn device(&self) -> anyhow::Result<String> {
        let table = std::fs::read_to_string("/proc/self/mounts")?;
        let target = self.mount_point.to_string_lossy();
        table
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((f.next()?, f.next()?))
            })
            .filter(|(_, at)| unescape(at) == target)
            .map(|(dev, _)| dev.to_owned())
            .next_back()
            .with_context(|| format!("{} is not mounted", self.mount_point.display()))
    }

    /// Unmounts the volume (its loop device goes with it); the image stays. Idempotent. A
    /// server that has just stopped, or the removal of data a restore replaced, may still hold
    /// it for a moment ("target is busy"): it is asked again for a while before the error is
    /// the step's, to retry.
    pub async fn unmount(&self) -> anyhow::Result<()> {
        let mut tries = 0;
        while self.mounted() {
            let mut umount = tokio::process::Command::new("umount");
            umount.arg(&self.mount_point);
            match tool(umount, "umount").await {
                Ok(()) => {}
                Err(e) if tries < UNMOUNT_TRIES && format!("{e:#}").contains("busy") => {
                    tries += 1;
                    tokio::time::sleep(UNMOUNT_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Unmounts the volume and deletes its image, and so everything on it. Idempotent.
    pub async fn remove(&self) -> anyhow::Result<()> {
        self.unmount().await?;
        match std::fs::remove_file(&self.image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.image.display()))
            }
            _ => Ok(()),
        }
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        let s = nix::sys::statvfs::statvfs(&self.mount_point)?;
        let frag = s.fragment_size() as u64;
        let size_bytes = s.blocks() as u64 * frag;
        let available_bytes = s.blocks_available() as u64 * frag;
        let used_bytes = size_bytes - s.blocks_free() as u64 * frag;
        Ok(Usage { size_bytes, used_bytes, available_bytes })
    }
}

/// `/proc/self/mounts` writes a space, tab, newline and backslash in a path as octal escapes.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// How often, and how far apart, a busy volume is asked to unmount again: 10 s in all.
const UNMOUNT_TRIES: u32 = 40;
const UNMOUNT_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

async fn tool(mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    cmd.stdin(std::process::Stdio::null());
    let out = crate::pg::run_for(cmd, what, TOOL_TIMEOUT).await;
    if let Err(e) = &out {
        if e.to_string().contains("running ") {
            bail!("{what} is needed for store volumes when Berth runs as root: {e:#}");
        }
    }
    out.map(drop)
}

/// The size of the ext4 filesystem in `image` (a file or a device), from its superblock.
async fn filesystem_bytes(image: &Path) -> anyhow::Result<u64> {
    let mut dumpe2fs = tokio::process::Command::new("dumpe2fs");
    dumpe2fs.arg("-h").arg(image).stdin(std::process::Stdio::null());
    let out = crate::pg::run_for(dumpe2fs, "dumpe2fs", TOOL_TIMEOUT).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok())
    };
    let (count, block) =
        field("Block count:").zip(field("Block size:")).context("dumpe2fs: no block count")?;
    Ok(count * block)
}

fn bytes(size_gib: u32) -> u64 {
    u64::from(size_gib.max(1)) * GIB
}

/// The volumes of this Berth's nodes: `root/volumes/<node id>.img`.
pub fn image_for(root: &Path, node_id: crate::domain::NodeId) -> PathBuf {
    root.join("volumes").join(format!("{node_id}.img"))
}

/// Unmounts the volumes of any Berth whose image was deleted under them (a data folder removed
/// while its nodes' volumes were mounted): nothing can reach their data again, and each holds a
/// loop device until unmounted. Returns what it unmounted, for the log.
pub async fn unmount_orphans() -> anyhow::Result<Vec<String>> {
    let mut out = vec![];
    let Ok(devices) = std::fs::read_dir("/sys/block") else { return Ok(out) };
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for dev in devices.flatten() {
        let name = dev.file_name().to_string_lossy().into_owned();
        let Ok(backing) = std::fs::read_to_string(dev.path().join("loop/backing_file")) else { continue };
        let Some(image) = backing.trim_end().strip_suffix(" (deleted)") else { continue };
        let is_volume = Path::new(image).parent().is_some_and(|p| p.ends_with("volumes"))
            && image.ends_with(".img")
            && Path::new(image).file_stem().and_then(|s| s.to_str()?.parse::<uuid::Uuid>().ok()).is_some();
        if !is_volume {
            continue;
        }
        let device = format!("/dev/{name}");
        for target in mounts.lines().filter_map(|l| {
            let mut f = l.split(' ');
            (f.next()? == device).then(|| f.next().map(unescape)).flatten()
        }) {
            let mut umount = tokio::process::Command::new("umount");
            umount.arg("--lazy").arg(&target);
            tool(umount, "umount").await?;
            // What the removal left for the mount: the node's, store's and data folder's
            // skeleton, removed while empty.
            for dir in Path::new(&target).ancestors().take(4) {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
            out.push(target);
        }
    }
    Ok(out)
}
