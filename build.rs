//! Build metadata for `GET /api/version` and `berthctl version`: the commit (when built from a git
//! checkout with git installed) and the build time, or "unknown". No network.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let in_git = std::path::Path::new(".git").exists();
    let commit = if in_git { git(&["rev-parse", "--short=12", "HEAD"]) } else { None };
    // Rebuilt when HEAD moves (a commit, a checkout), not at every build: a new build date at
    // every build would recompile the crate every time.
    if in_git {
        for p in ["HEAD", "logs/HEAD"] {
            if let Some(path) = git(&["rev-parse", "--git-path", p]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    println!("cargo:rustc-env=BERTH_BUILD_DATE={}", date.as_deref().unwrap_or("unknown"));
}
