use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const TOOLS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

pub const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. \
Install them (Debian/Ubuntu: `apt-get install postgresql`; Fedora/RHEL: `dnf install postgresql-server`; \
macOS: `brew install postgresql@16`), or point BERTH_PG_BINDIR at their folder, \
or set DATABASE_URL to use an existing PostgreSQL server.";

/// A folder holding a complete set of PostgreSQL server binaries, and their version.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bindir: PathBuf,
    /// As `postgres --version` prints it, e.g. `15.18`.
    pub version: String,
    pub major: u32,
}

impl PgBinaries {
    /// Finds the binaries: `explicit` if given; else `initdb` on PATH, `pg_config --bindir`, or the
    /// newest `/usr/lib/postgresql/*/bin` (Debian) or `/usr/pgsql-*/bin` (RHEL).
    pub fn locate(explicit: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = explicit {
            if !complete(dir) {
                bail!("BERTH_PG_BINDIR={} does not hold initdb, pg_ctl and postgres", dir.display());
            }
            return Self::at(dir);
        }
        candidates()
            .into_iter()
            .find(|dir| complete(dir))
            .map(|dir| Self::at(&dir))
            .unwrap_or_else(|| bail!(INSTALL_HINT))
    }

    /// Every major version installed here, ascending: each `/usr/lib/postgresql/*/bin` and
    /// `/usr/pgsql-*/bin`, the folders on PATH, and `explicit` (which must be complete). When
    /// two folders hold the same major, the one [`PgBinaries::locate`] would pick wins.
    pub fn installed(explicit: Option<&Path>) -> anyhow::Result<Vec<Self>> {
        let mut found = vec![Self::locate(explicit)?];
        for dir in candidates() {
            if complete(&dir) && found.iter().all(|b| b.bindir != dir) {
                let b = Self::at(&dir)?;
                if found.iter().all(|f| f.major != b.major) {
                    found.push(b);
                }
            }
        }
        found.sort_by_key(|b| b.major);
        Ok(found)
    }

    fn at(dir: &Path) -> anyhow::Result<Self> {
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .with_context(|| format!("running {}/postgres --version", dir.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let version =
            text.split_whitespace().nth(2).context("unexpected `postgres --version` output")?.to_owned();
        let major = version
            .split(['.', 'b', 'r'])
            .next()
            .and_then(|m| m.parse().ok())
            .context("unexpected PostgreSQL version")?;
        Ok(Self { bindir: dir.to_owned(), version, major })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

fn complete(dir: &Path) -> bool {
    TOOLS.iter().all(|t| dir.join(t).is_file())
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // /usr/local/bin/initdb may be a link into the real folder beside pg_ctl.
                if let Ok(real) = std::fs::canonicalize(&initdb) {
                    out.extend(real.parent().map(Path::to_owned));
                }
                out.push(dir);
            }
        }
    }
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        if o.status.success() {
            out.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
    }
    for pattern in ["/usr/lib/postgresql", "/usr"] {
        let Ok(entries) = std::fs::read_dir(pattern) else {
            continue;
        };
        let mut versioned: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let num = if pattern == "/usr" {
                    name.strip_prefix("pgsql-")?.parse().ok()?
                } else {
                    name.parse().ok()?
                };
                Some((num, e.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        out.extend(versioned.into_iter().map(|(_, p)| p));
    }
    out
}
