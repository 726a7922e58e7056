use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{CredentialId, Error, OrgId, Result, Role, Scope, UserId};

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Session,
    /// An OAuth2 access token of a client credential, limited to its scopes.
    Bearer {
        credential_id: CredentialId,
        scopes: Vec<Scope>,
    },
}

impl AuthMethod {
    pub fn credential_id(&self) -> Option<CredentialId> {
        match self {
            Self::Session => None,
            Self::Bearer { credential_id, .. } => Some(*credential_id),
        }
    }

    /// Refuses a bearer token for what a credential must never do by itself (`what`, as the
    /// problem's detail names it), like minting more credentials or making owners.
    pub fn require_session(&self, what: &str) -> Result<()> {
        match self {
            Self::Session => Ok(()),
            Self::Bearer { .. } => Err(Error::Forbidden {
                code: "session_required",
                detail: format!("{what} needs a signed-in user; an OAuth2 credential cannot do it"),
            }),
        }
    }

    /// For a bearer token: refuses a scope the token lacks.
    pub fn require_scope(&self, scope: Scope) -> Result<()> {
        match self {
            Self::Bearer { scopes, .. } if !scopes.contains(&scope) => Err(Error::InsufficientScope(scope)),
            _ => Ok(()),
        }
    }
}

/// An organization the principal belongs to, with the role held there. Loaded with the principal
/// in the statement that authenticates the request, so reading one's own organization costs no
/// further round trip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrincipalOrg {
    pub id: OrgId,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The authenticated user behind a request, loaded fresh on every request (role changes and
/// revocations take effect at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: UserId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub origin: String,
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub orgs: Vec<PrincipalOrg>,
}

impl Principal {
    /// One of the principal's organizations. Not a member: 404, as for an organization that
    /// does not exist.
    pub fn org(&self, org_id: OrgId) -> Result<&PrincipalOrg> {
        self.orgs.iter().find(|o| o.id == org_id).ok_or(Error::NotFound("organization"))
    }

    /// The principal acting inside one organization. Not a member: 404, exactly as for an
    /// organization that does not exist, so that nobody learns of another tenant's ids.
    pub fn in_org(&self, org_id: OrgId, method: AuthMethod) -> Result<Ctx> {
        let org = self.org(org_id)?;
        Ok(Ctx { user_id: self.user_id, org_id, role: org.role, method })
    }
}

/// The tenant context every org-scoped handler and query works in.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub role: Role,
    pub method: AuthMethod,
}

impl Ctx {
    /// Authorization as one explicit call at the top of a handler.
    /// A bearer token needs the scope in its credential *and* in its creator's current role, so
    /// that demoting the creator narrows the credential at the next request.
    pub fn require(&self, scope: Scope) -> Result<()> {
        self.method.require_scope(scope)?;
        if self.role.allows(scope) {
            Ok(())
        } else if matches!(self.method, AuthMethod::Bearer { .. }) {
            Err(Error::InsufficientScope(scope))
        } else {
            Err(Error::Forbidden {
                code: "insufficient_role",
                detail: format!("the role {} does not allow {}", self.role.as_str(), scope.as_str()),
            })
        }
    }
}
