//! The organization's audit trail, and a check that its hash chain is unbroken.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::audit::EventRow;
use crate::domain::{OrgId, Scope};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::service::audit::{self, Query};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events)).routes(routes!(verify_chain))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The actor's user id or e-mail.
    actor: Option<String>,
    /// An action (`member.added`), or a prefix ending in `.` (`credential.`).
    action: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<OffsetDateTime>,
    /// Events before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<OffsetDateTime>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `login`, `logout`, `credential.created`, `member.added`, `token.refused`, …
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub actor_user_id: Option<Uuid>,
    /// The actor's e-mail, or what an unauthenticated caller claimed to be.
    pub actor: Option<String>,
    /// The client credential the actor used, if any.
    pub credential_id: Option<Uuid>,
    pub target: Option<String>,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    /// Hex SHA-256 of this event and the previous one's hash.
    pub hash: String,
}

impl From<EventRow> for AuditEvent {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            details: serde_json::from_str(&r.details).unwrap_or_default(),
            action: r.action,
            outcome: r.outcome,
            actor_user_id: r.actor_user_id,
            actor: r.actor,
            credential_id: r.credential_id,
            target: r.target,
            source_ip: r.source_ip,
            request_id: r.request_id,
            hash: hex::encode(r.hash),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The organization's audit events, newest first (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/audit-events", tag = "audit",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path), EventQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 403, description = "Not an owner or admin, or the token lacks org:admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppQuery(q): AppQuery<EventQuery>,
) -> ApiResult<AppJson<AuditPage>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    let query = Query {
        actor: q.actor.as_deref(),
        action: q.action.as_deref(),
        from: q.from,
        to: q.to,
        cursor: q.cursor.as_deref(),
        limit: q.limit,
    };
    let events = audit::list(&state, &ctx, &query).await?;
    Ok(AppJson(AuditPage {
        items: events.items.into_iter().map(Into::into).collect(),
        next_cursor: events.next,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerification {
    /// True when every event links to the one before it and its hash matches its content.
    pub valid: bool,
    pub events_checked: usize,
    /// The first event whose link or content does not match, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid_event_id: Option<i64>,
}

/// Recomputes the organization's hash chain: an edited, inserted or deleted event breaks it
/// (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/audit-events/verify", tag = "audit",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = ChainVerification),
        (status = 403, description = "Not an owner or admin, or the token lacks org:admin", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_chain(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<ChainVerification>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    let v = audit::verify(&state, &ctx).await?;
    Ok(AppJson(ChainVerification {
        valid: v.first_invalid.is_none(),
        events_checked: v.checked,
        first_invalid_event_id: v.first_invalid,
    }))
}
