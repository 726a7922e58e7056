//! Organizations and their members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::orgs::{MemberRow, OrgRow};
use crate::domain::{AuthMethod, OrgId, PrincipalOrg, Role, Scope, UserId};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::{Accepted, Created};
use crate::http::views::{InvitationView, invitation_view};
use crate::service::members::{self, AddMember, Added, parse_role};
use crate::service::orgs::{self, CreateOrg};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org))
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    #[schema(value_type = Uuid)]
    pub id: OrgId,
    pub name: String,
    /// The caller's role in this organization.
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TryFrom<OrgRow> for OrgView {
    type Error = ApiError;
    fn try_from(r: OrgRow) -> ApiResult<Self> {
        Ok(Self {
            id: r.id,
            name: r.name,
            role: parse_role(&r.role)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<&PrincipalOrg> for OrgView {
    fn from(o: &PrincipalOrg) -> Self {
        Self {
            id: o.id,
            name: o.name.clone(),
            role: o.role,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgList {
    pub items: Vec<OrgView>,
}

/// The organizations the caller belongs to (for a bearer token: its credential's one).
#[utoipa::path(
    get, path = "/api/v1/orgs", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:read"])),
    responses(
        (status = 200, body = OrgList),
        (status = 403, description = "The initial password must be changed first", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_orgs(user: ActiveUser) -> ApiResult<AppJson<OrgList>> {
    user.method.require_scope(Scope::OrgRead)?;
    // The principal was loaded with its organizations by the statement that authenticated this
    // request; a credential's principal holds its own organization only.
    Ok(AppJson(OrgList { items: user.principal.orgs.iter().map(OrgView::from).collect() }))
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "orgs",
    security(("session" = [])),
    request_body = CreateOrg,
    responses(
        (status = 201, body = OrgView, headers(("Location" = String, description = "The organization"))),
        (status = 403, description = "A bearer token, a cross-site request, or the initial password must be changed first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_org(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppJson(body): AppJson<CreateOrg>,
) -> ApiResult<Created<OrgView>> {
    user.require_session()?;
    let row = orgs::create(&state, &meta, user.principal.user_id, user.method, &user.principal.email, &body)
        .await?;
    let location = format!("/api/v1/orgs/{}", row.id);
    Ok(Created::new(OrgView::try_from(row)?, location))
}

/// One organization the caller belongs to. Any other id, existing or not, is 404.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = OrgView),
    )
)]
async fn get_org(user: ActiveUser, AppPath(org_id): AppPath<OrgId>) -> ApiResult<AppJson<OrgView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgRead)?;
    // Read with the principal, in one statement: no second round trip.
    Ok(AppJson(user.principal.org(org_id)?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    /// The member has not yet replaced the initial password.
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TryFrom<MemberRow> for MemberView {
    type Error = ApiError;
    fn try_from(r: MemberRow) -> ApiResult<Self> {
        Ok(Self {
            user_id: r.user_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            role: parse_role(&r.role)?,
            must_change_password: r.must_change_password,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberView>,
}

/// The organization's members and their roles.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/members", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = MemberList),
    )
)]
async fn list_members(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<MemberList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgRead)?;
    let rows = members::list(&state, &ctx).await?;
    let items = rows.into_iter().map(MemberView::try_from).collect::<ApiResult<_>>()?;
    Ok(AppJson(MemberList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    /// The new account, a member now.
    pub member: MemberView,
}

/// What adding a member did: 201 with the new member, or 202 with the invitation.
pub enum AddedView {
    Member(AddedMember, String),
    Invited(InvitationView, String),
}

impl IntoResponse for AddedView {
    fn into_response(self) -> Response {
        match self {
            Self::Member(m, location) => Created::new(m, location).into_response(),
            Self::Invited(i, location) => Accepted::new(i, location).into_response(),
        }
    }
}

/// Adds a member by e-mail. An address that is not a member is invited (202): the account with
/// it, now or once it exists, becomes a member by accepting (`/api/v1/users/me/invitations`).
/// The answer is the same whether or not the address has an account. With a `password`, an
/// address without an account gets one, a member at once (201), which must change the password
/// at first login. Admins may add any role but owner; owners may add owners.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/members", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path)),
    request_body = AddMember,
    responses(
        (status = 201, description = "A new account, given the password, is a member", body = AddedMember, headers(("Location" = String, description = "The member"))),
        (status = 202, description = "Invited; the invitation is pending until its invitee answers it", body = InvitationView, headers(("Location" = String, description = "The invitation"))),
        (status = 403, description = "Not allowed, a bearer token giving a password or the role owner (`session_required`), or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid e-mail, role or password", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_member(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppJson(body): AppJson<AddMember>,
) -> ApiResult<AddedView> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    Ok(match members::add(&state, &meta, &ctx, &user.principal.email, body).await? {
        Added::Member(m) => {
            let location = format!("/api/v1/orgs/{org_id}/members/{}", m.user_id);
            AddedView::Member(AddedMember { member: m.try_into()? }, location)
        }
        Added::Invited(i) => {
            let location = format!("/api/v1/orgs/{org_id}/invitations/{}", i.id);
            AddedView::Invited(invitation_view(i, state.clock.now())?, location)
        }
    })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: Role,
}

/// Changes a member's role. Only owners may make or unmake owners, and only signed in: a bearer
/// token cannot make an owner. The last owner stays one.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{org_id}/members/{user_id}", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = UpdateMember,
    responses(
        (status = 200, body = MemberView),
        (status = 403, description = "Not allowed, a bearer token making an owner (`session_required`), or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be demoted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid role", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_member(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, user_id)): AppPath<(OrgId, UserId)>,
    AppJson(body): AppJson<UpdateMember>,
) -> ApiResult<AppJson<MemberView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    let member = members::set_role(&state, &meta, &ctx, &user.principal.email, user_id, body.role).await?;
    Ok(AppJson(member.try_into()?))
}

/// Removes a member. Anyone may leave; removing others needs admin, and an owner needs an
/// owner. The last owner cannot be removed.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/members/{user_id}", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:admin"])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not allowed, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be removed", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_member(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, user_id)): AppPath<(OrgId, UserId)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    if user_id != ctx.user_id || matches!(ctx.method, AuthMethod::Bearer { .. }) {
        ctx.require(Scope::OrgAdmin)?;
    }
    members::remove(&state, &meta, &ctx, &user.principal.email, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
