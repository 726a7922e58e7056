//! Firewall rules: the networks allowed to connect to a store. Each change is written into every
//! node's `pg_hba.conf` and reloaded before the call returns; anything not allowed is refused.
//!
//! A private store (one in a VPC) with no rules admits its VPC's block and the blocks of the
//! VPCs actively peered with it, following peerings as they come and go. Once it has rules, they
//! replace that default: exactly the networks listed are admitted, which narrows it (a part of
//! a block) or adds to it (other blocks besides). Removing the last rule restores the default.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::firewall::RuleRow;
use crate::domain::{OrgId, RuleId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::Created;
use crate::service::firewall::{self, NewRuleBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, add_rule, replace_rules)).routes(routes!(delete_rule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    #[schema(value_type = Uuid)]
    pub id: RuleId,
    /// Canonical CIDR.
    #[schema(example = "203.0.113.0/24")]
    pub source: String,
    pub description: String,
    /// The rule removes itself at this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<RuleRow> for RuleView {
    fn from(r: RuleRow) -> Self {
        Self {
            id: r.id,
            source: r.source.to_string(),
            description: r.description,
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub items: Vec<RuleView>,
}

impl From<Vec<RuleRow>> for RuleList {
    fn from(rows: Vec<RuleRow>) -> Self {
        Self { items: rows.into_iter().map(Into::into).collect() }
    }
}

/// The store's firewall rules in force. For a private store, none means its VPC and the VPCs
/// actively peered with it.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules", tag = "firewall",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = RuleList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_rules(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<RuleList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let rows = firewall::list(&state, &ctx, store_id).await?;
    Ok(AppJson(RuleList::from(rows)))
}

/// Allows a network. In force on every node when this returns. On a private store, the first
/// rule replaces the default (its VPC and peered VPCs): list those blocks too to keep them.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules", tag = "firewall",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = NewRuleBody,
    responses(
        (status = 201, body = RuleView, headers(("Location" = String, description = "The rule (as `DELETE` takes it)"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The network is allowed already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a network, host bits set (the canonical form is named), or expiry in the past", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Saved, but a node could not take it now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_rule(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<NewRuleBody>,
) -> ApiResult<Created<RuleView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let rule = firewall::add(&state, &meta, &ctx, &user.principal.email, store_id, body).await?;
    let location = format!("/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules/{}", rule.id);
    Ok(Created::new(rule.into(), location))
}

/// Replaces the whole set at once. An empty list refuses every client of a public store; a
/// private store goes back to admitting its VPC and the VPCs actively peered with it.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules", tag = "firewall",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body(content = Vec<NewRuleBody>, description = "The whole new set of rules"),
    responses(
        (status = 200, body = RuleList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid or repeated rule (each named)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Saved, but a node could not take them now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn replace_rules(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<Vec<NewRuleBody>>,
) -> ApiResult<AppJson<RuleList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let rows = firewall::replace(&state, &meta, &ctx, &user.principal.email, store_id, body).await?;
    Ok(AppJson(RuleList::from(rows)))
}

/// Removes a rule. Out of force on every node when this returns.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules/{rule_id}", tag = "firewall",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("rule_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such store or rule for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Removed, but a node could not take it now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_rule(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, rule_id)): AppPath<(OrgId, StoreId, RuleId)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    firewall::delete(&state, &meta, &ctx, &user.principal.email, store_id, rule_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
