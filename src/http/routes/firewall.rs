//! Firewall rules: the networks allowed to connect to a store. Each change is written into every
//! node's `pg_hba.conf` and reloaded before the call returns; anything not allowed is refused.
//!
//! A private store (one in a VPC) with no rules admits its VPC's block and the blocks of the
//! VPCs actively peered with it, following peerings as they come and go. Once it has rules, they
//! replace that default: exactly the networks listed are admitted, which narrows it (a part of
//! a block) or adds to it (other blocks besides). Removing the last rule restores the default.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::firewall::{NewRule, RuleRow};
use crate::domain::{Cidr, Ctx, NodeState, Scope};
use crate::error::{ApiError, ApiResult, FieldError, Problem, on_constraint};
use crate::http::extract::{ActiveUser, AppJson, AppPath};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_rules, add_rule, replace_rules)).routes(routes!(delete_rule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: Uuid,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleBody {
    /// An IPv4 or IPv6 network (`10.0.0.0/8`); a bare address means that host alone. Host bits
    /// must be clear.
    #[schema(example = "203.0.113.0/24")]
    pub source: String,
    /// At most 200 characters, without control characters.
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,200}$")]
    pub description: String,
    /// Optional: the rule removes itself at this time (RFC 3339, in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

struct Valid {
    source: Cidr,
    description: String,
    expires_at: Option<OffsetDateTime>,
}

fn validate(field: &str, r: NewRuleBody, now: OffsetDateTime) -> Result<Valid, FieldError> {
    let err = |f: &str, message: String| FieldError { field: format!("{field}{f}"), message };
    let source = Cidr::parse(&r.source).map_err(|m| err("source", m))?;
    let description = r.description.trim().to_owned();
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        return Err(err("description", "at most 200 characters, no control characters".into()));
    }
    if r.expires_at.is_some_and(|e| e <= now) {
        return Err(err("expires_at", "must be in the future".into()));
    }
    Ok(Valid { source, description, expires_at: r.expires_at })
}

/// Writes the store's rules into every node and reloads them.
async fn apply(state: &AppState, ctx: &Ctx, store_id: Uuid) -> ApiResult<()> {
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await?;
    for n in nodes.iter().filter(|n| n.state != NodeState::Removing) {
        let Some(spec) =
            state.plane.node_spec(&state.db, ctx.org_id, store_id, n.id, state.clock.now()).await?
        else {
            continue;
        };
        state.plane.driver.apply_access(&spec).await.map_err(|e| {
            tracing::error!(store = %store_id, node = %n.id, error = %format!("{e:#}"), "applying firewall rules");
            crate::domain::Error::Unavailable(format!(
                "the rules are saved but node {} could not take them now; they are applied when it next starts",
                n.id
            ))
        })?;
    }
    Ok(())
}

async fn store_exists(state: &AppState, ctx: &Ctx, store_id: Uuid) -> ApiResult<()> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    Ok(())
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<RuleList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    store_exists(&state, &ctx, store_id).await?;
    let rows = db::firewall::list(&state.db, &ctx, store_id, state.clock.now()).await?;
    Ok(AppJson(RuleList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Allows a network. In force on every node when this returns. On a private store, the first
/// rule replaces the default (its VPC and peered VPCs): list those blocks too to keep them.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/firewall-rules", tag = "firewall",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = NewRuleBody,
    responses(
        (status = 201, body = RuleView),
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<NewRuleBody>,
) -> ApiResult<(StatusCode, AppJson<RuleView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let now = state.clock.now();
    let rule = validate("", body, now).map_err(|e| ApiError::invalid(vec![e]))?;
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    let id = Uuid::now_v7();
    let new = NewRule {
        id,
        source: rule.source.net(),
        description: &rule.description,
        expires_at: rule.expires_at,
        now,
    };
    db::firewall::insert(&mut *tx, &ctx, store_id, new).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "firewall_rules_source_key")
                .then(|| ApiError::conflict("duplicate_rule", format!("{} is allowed already", rule.source)))
        })
    })?;
    Event::new("firewall.rule_added", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("source", rule.source.to_string())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    apply(&state, &ctx, store_id).await?;
    let view = RuleView {
        id,
        source: rule.source.to_string(),
        description: rule.description,
        expires_at: rule.expires_at,
        created_at: now,
    };
    Ok((StatusCode::CREATED, AppJson(view)))
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<Vec<NewRuleBody>>,
) -> ApiResult<AppJson<RuleList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let now = state.clock.now();
    let mut rules = vec![];
    let mut errors = vec![];
    for (i, r) in body.into_iter().enumerate() {
        match validate(&format!("[{i}]."), r, now) {
            Ok(v) if rules.iter().any(|x: &Valid| x.source == v.source) => errors.push(FieldError {
                field: format!("[{i}].source"),
                message: format!("{} is listed twice", v.source),
            }),
            Ok(v) => rules.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    db::firewall::delete_all(&mut *tx, &ctx, store_id).await?;
    for r in &rules {
        let new = NewRule {
            id: Uuid::now_v7(),
            source: r.source.net(),
            description: &r.description,
            expires_at: r.expires_at,
            now,
        };
        db::firewall::insert(&mut *tx, &ctx, store_id, new).await?;
    }
    Event::new("firewall.rules_replaced", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("sources", rules.iter().map(|r| r.source.to_string()).collect::<Vec<_>>())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    apply(&state, &ctx, store_id).await?;
    let rows = db::firewall::list(&state.db, &ctx, store_id, now).await?;
    Ok(AppJson(RuleList { items: rows.into_iter().map(Into::into).collect() }))
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
    AppPath((org_id, store_id, rule_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    if !db::firewall::delete(&mut *tx, &ctx, store_id, rule_id).await? {
        return Err(ApiError::not_found("firewall rule"));
    }
    Event::new("firewall.rule_removed", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("rule", rule_id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    apply(&state, &ctx, store_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
