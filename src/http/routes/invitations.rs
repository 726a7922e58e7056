//! Invitations: how an address that is not yet a member joins an organization. The account with
//! that address sees the invitation and accepts or declines it; until it accepts it is no member
//! and nothing it does enters the organization's audit trail. Inviting answers the same whether
//! or not the address has an account.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::invitations::InvitationRow;
use crate::domain::{InvitationId, OrgId, Scope};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::views::{InvitationView, invitation_view as view};
use crate::service::invitations::{self, Answer};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_org_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(answer_invitation))
}

fn views((rows, now): (Vec<InvitationRow>, OffsetDateTime)) -> ApiResult<InvitationList> {
    Ok(InvitationList { items: rows.into_iter().map(|r| view(r, now)).collect::<ApiResult<_>>()? })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<InvitationView>,
}

/// The organization's invitations, newest first, with their state (expired ones included).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/invitations", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = InvitationList),
        (status = 403, description = "Not an owner or admin", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_org_invitations(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<InvitationList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    Ok(AppJson(views(invitations::list(&state, &ctx).await?)?))
}

/// Withdraws an invitation that has not been answered. An invitation to become an owner can
/// only be withdrawn by an owner.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not allowed, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Accepted, declined or revoked already (`invitation_answered`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_invitation(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, id)): AppPath<(OrgId, InvitationId)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    invitations::revoke(&state, &meta, &ctx, &user.principal.email, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The invitations to the signed-in user's address that can still be answered.
#[utoipa::path(
    get, path = "/api/v1/users/me/invitations", tag = "users",
    security(("session" = [])),
    responses(
        (status = 200, body = InvitationList),
        (status = 403, description = "A bearer token, or the initial password must be changed first", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn my_invitations(
    State(state): State<AppState>,
    user: ActiveUser,
) -> ApiResult<AppJson<InvitationList>> {
    user.require_session()?;
    Ok(AppJson(views(invitations::open_for(&state, &user.principal.email).await?)?))
}

/// Answers an invitation to the signed-in user's address. `accept`: the user becomes a member
/// with the invited role, recorded in the organization's audit trail. `decline`: the
/// organization sees it declined in its list of invitations, and the event is in the system's
/// audit trail, not the organization's, which the user never joined.
#[utoipa::path(
    post, path = "/api/v1/users/me/invitations/{invitation_id}/{answer}", tag = "users",
    security(("session" = [])),
    params(("invitation_id" = Uuid, Path), ("answer" = inline(Answer), Path, description = "`accept` or `decline`")),
    responses(
        (status = 200, description = "Answered: accepted (the user is a member) or declined", body = InvitationView),
        (status = 400, description = "Not an invitation id, or an answer other than accept or decline", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A bearer token, a cross-site request, or the initial password must be changed first", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation to the user's address", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Expired (`invitation_expired`), answered already (`invitation_answered`), or a member already", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn answer_invitation(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((id, answer)): AppPath<(InvitationId, Answer)>,
) -> ApiResult<AppJson<InvitationView>> {
    user.require_session()?;
    let (row, now) = invitations::answer(&state, &meta, &user.principal, &user.method, id, answer).await?;
    Ok(AppJson(view(row, now)?))
}
