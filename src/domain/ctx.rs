use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Role, Scope};
use crate::error::{ApiError, ApiResult};

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Session,
}

/// An organization the principal belongs to, with the role held there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrincipalOrg {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// The authenticated user behind a request, loaded fresh on every request (role changes and
/// revocations take effect at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: Uuid,
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
    /// The principal acting inside one organization. Not a member: 404, exactly as for an
    /// organization that does not exist, so that nobody learns of another tenant's ids.
    pub fn in_org(&self, org_id: Uuid, method: AuthMethod) -> ApiResult<Ctx> {
        let org = self
            .orgs
            .iter()
            .find(|o| o.id == org_id)
            .ok_or(ApiError::NotFound("organization"))?;
        Ok(Ctx {
            user_id: self.user_id,
            org_id,
            role: org.role,
            method,
        })
    }
}

/// The tenant context every org-scoped handler and query works in.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub method: AuthMethod,
}

impl Ctx {
    /// Authorization as one explicit call at the top of a handler.
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.role.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                code: "insufficient_role",
                detail: format!(
                    "the role {} does not allow {}",
                    self.role.as_str(),
                    scope.as_str()
                ),
            })
        }
    }
}
