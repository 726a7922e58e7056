//! Organizations: making one, whose maker is its first owner.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::orgs::OrgRow;
use crate::domain::{AuthMethod, Ctx, Error, OrgId, Result, Role, UserId};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// 1 to 100 characters, not all blank, without control characters.
    #[schema(example = "Acme", pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}$")]
    pub name: String,
}

/// An organization's name, trimmed: 1 to 100 characters without control characters.
pub fn org_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(Error::field("name", "must be 1 to 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::field("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// Makes an organization with `user_id` its owner; returns it as its owner sees it.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    user_id: UserId,
    method: AuthMethod,
    actor: &str,
    cmd: &CreateOrg,
) -> Result<OrgRow> {
    let name = org_name(&cmd.name)?;
    let id = OrgId::new();
    let ctx = Ctx { user_id, org_id: id, role: Role::Owner, method };
    let mut tx = state.db.begin().await?;
    db::orgs::create(&mut tx, id, &name, ctx.user_id).await?;
    Event::new("org.created", meta)
        .in_ctx(&ctx, actor)
        .target(format!("org:{id}"))
        .detail("name", &name)
        .record_in(&mut tx, state.clock.now())
        .await?;
    let row = db::orgs::get(&mut *tx, &ctx).await?.ok_or(Error::NotFound("organization"))?;
    tx.commit().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names() {
        assert_eq!(org_name("  Acme ").unwrap(), "Acme");
        assert!(org_name("").is_err());
        assert!(org_name(&"x".repeat(101)).is_err());
        assert!(org_name(&"é".repeat(100)).is_ok(), "characters, not bytes");
        assert!(org_name("a\u{0}b").is_err());
    }
}
