//! What this build is, for `GET /api/version` and `berthctl version`, and the rule by which a
//! client and a server tell whether they can work together.

/// This build's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built, or `unknown` when built outside a git checkout.
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");
/// When it was built (RFC 3339, UTC), or `unknown`.
pub const BUILD_DATE: &str = env!("BERTH_BUILD_DATE");
/// The API's version: the `v1` of `/api/v1`.
pub const API_VERSION: &str = "1";
/// The oldest `berthctl` this server works with, unless configured otherwise.
pub const MIN_CLIENT_VERSION: &str = "0.1.0";

/// A `major.minor.patch` version (a pre-release or build suffix is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Semver {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Semver {
    pub fn parse(s: &str) -> Option<Self> {
        let core = s.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next().unwrap_or(Some(0))?;
        let patch = parts.next().unwrap_or(Some(0))?;
        parts.next().is_none().then_some(Self { major, minor, patch })
    }
}

/// How a client of version `client` stands with a server of version `server` asking for at
/// least `min_client`.
#[derive(Debug, PartialEq, Eq)]
pub enum Compatibility {
    Compatible,
    /// The server asks for a newer client; it may still work.
    ClientTooOld,
    /// Different major versions: the API may have changed incompatibly.
    MajorMismatch,
}

pub fn compatibility(client: Semver, server: Semver, min_client: Option<Semver>) -> Compatibility {
    if client.major != server.major {
        Compatibility::MajorMismatch
    } else if min_client.is_some_and(|m| client < m) {
        Compatibility::ClientTooOld
    } else {
        Compatibility::Compatible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Semver {
        Semver::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_and_compare_numerically() {
        assert_eq!(v("1.2.3"), Semver { major: 1, minor: 2, patch: 3 });
        assert_eq!(v("v2"), Semver { major: 2, minor: 0, patch: 0 });
        assert_eq!(v("0.10.0-rc.1"), Semver { major: 0, minor: 10, patch: 0 });
        assert!(v("0.10.0") > v("0.9.9"));
        for bad in ["", "x", "1.x", "1.2.3.4", "-1"] {
            assert!(Semver::parse(bad).is_none(), "{bad}");
        }
        assert!(Semver::parse(VERSION).is_some());
        assert!(Semver::parse(MIN_CLIENT_VERSION).is_some());
    }

    #[test]
    fn a_client_is_too_old_below_the_minimum_and_incompatible_across_majors() {
        use Compatibility::*;
        assert_eq!(compatibility(v("0.1.0"), v("0.3.0"), Some(v("0.1.0"))), Compatible);
        assert_eq!(compatibility(v("0.1.0"), v("0.3.0"), Some(v("0.2.0"))), ClientTooOld);
        assert_eq!(compatibility(v("0.1.0"), v("0.3.0"), None), Compatible);
        assert_eq!(compatibility(v("1.4.0"), v("2.0.0"), None), MajorMismatch);
        assert_eq!(compatibility(v("2.0.0"), v("1.9.0"), Some(v("1.0.0"))), MajorMismatch);
    }
}
