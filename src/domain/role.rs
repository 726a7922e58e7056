use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in an organization. Each role includes everything the ones below it may do.
///
/// | role   | may |
/// |--------|-----|
/// | viewer | read the organization, its stores, backups (not their archives) and VPCs |
/// | member | as viewer, and create, change and delete stores, backups and VPCs; download archives |
/// | admin  | as member, and manage members (not owners) and credentials |
/// | owner  | as admin, and manage owners; an organization always keeps one |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" => Self::Viewer,
            "member" => Self::Member,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    /// The permission table: the least role whose members may hold each scope.
    pub fn least(scope: Scope) -> Self {
        match scope {
            Scope::OrgRead | Scope::StoresRead | Scope::BackupsRead | Scope::VpcsRead => Self::Viewer,
            Scope::StoresWrite | Scope::BackupsWrite | Scope::BackupsDownload | Scope::VpcsWrite => {
                Self::Member
            }
            Scope::OrgAdmin => Self::Admin,
        }
    }

    /// What each role may do, as scopes.
    pub fn allows(self, scope: Scope) -> bool {
        self >= Self::least(scope)
    }
}

/// What a request may do inside an organization. A session has every scope its role allows;
/// a bearer token has at most the scopes of its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    #[serde(rename = "org:read")]
    OrgRead,
    #[serde(rename = "org:admin")]
    OrgAdmin,
    #[serde(rename = "stores:read")]
    StoresRead,
    #[serde(rename = "stores:write")]
    StoresWrite,
    #[serde(rename = "backups:read")]
    BackupsRead,
    #[serde(rename = "backups:write")]
    BackupsWrite,
    /// Apart from `backups:read`: an archive holds every row and every password verifier.
    #[serde(rename = "backups:download")]
    BackupsDownload,
    #[serde(rename = "vpcs:read")]
    VpcsRead,
    #[serde(rename = "vpcs:write")]
    VpcsWrite,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Self::OrgRead,
        Self::OrgAdmin,
        Self::StoresRead,
        Self::StoresWrite,
        Self::BackupsRead,
        Self::BackupsWrite,
        Self::BackupsDownload,
        Self::VpcsRead,
        Self::VpcsWrite,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::OrgRead => "Read the organization and its members",
            Self::OrgAdmin => "Manage members and read the audit trail",
            Self::StoresRead => "Read stores, their nodes, jobs and settings",
            Self::StoresWrite => "Create, change and delete stores",
            Self::BackupsRead => "Read backups and schedules",
            Self::BackupsWrite => "Take, verify, restore and delete backups; change schedules",
            Self::BackupsDownload => "Download backup archives: all of a store's data and password verifiers",
            Self::VpcsRead => "Read VPCs and their peerings",
            Self::VpcsWrite => "Create and delete VPCs; request, accept, reject and delete peerings",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgRead => "org:read",
            Self::OrgAdmin => "org:admin",
            Self::StoresRead => "stores:read",
            Self::StoresWrite => "stores:write",
            Self::BackupsRead => "backups:read",
            Self::BackupsWrite => "backups:write",
            Self::BackupsDownload => "backups:download",
            Self::VpcsRead => "vpcs:read",
            Self::VpcsWrite => "vpcs:write",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer.allows(Scope::StoresRead));
        assert!(!Role::Viewer.allows(Scope::StoresWrite));
        assert!(Role::Member.allows(Scope::StoresWrite));
        assert!(!Role::Viewer.allows(Scope::BackupsDownload));
        assert!(Role::Member.allows(Scope::BackupsDownload));
        assert!(!Role::Member.allows(Scope::OrgAdmin));
        assert!(Role::Admin.allows(Scope::OrgAdmin));
        assert!(Role::Owner.allows(Scope::OrgAdmin));
    }

    #[test]
    fn role_names_round_trip() {
        for r in [Role::Viewer, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
