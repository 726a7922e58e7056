use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::orgs::{MemberRow, OrgRow};
use crate::domain::{AuthMethod, Ctx, Email, NewPassword, PrincipalOrg, Role, Scope};
use crate::error::{ApiError, ApiResult, Problem, on_constraint};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::views::{InvitationView, invitation_view};
use crate::service::members::{self, on_membership_conflict, parse_role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org))
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: Uuid,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// 1 to 100 characters, not all blank, without control characters.
    #[schema(example = "Acme", pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}$")]
    pub name: String,
}

fn org_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(ApiError::field("name", "must be 1 to 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(
    post, path = "/api/v1/orgs", tag = "orgs",
    security(("session" = [])),
    request_body = CreateOrg,
    responses(
        (status = 201, body = OrgView),
        (status = 403, description = "A bearer token, a cross-site request, or the initial password must be changed first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_org(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppJson(body): AppJson<CreateOrg>,
) -> ApiResult<(StatusCode, AppJson<OrgView>)> {
    user.require_session()?;
    let name = org_name(&body.name)?;
    let id = Uuid::now_v7();
    let ctx = Ctx { user_id: user.principal.user_id, org_id: id, role: Role::Owner, method: user.method };
    let mut tx = state.db.begin().await?;
    db::orgs::create(&mut tx, id, &name, ctx.user_id).await?;
    Event::new("org.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("org:{id}"))
        .detail("name", &name)
        .record_in(&mut tx, state.clock.now())
        .await?;
    let row = db::orgs::get(&mut *tx, &ctx).await?.ok_or(ApiError::not_found("organization"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(row.try_into()?)))
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
async fn get_org(user: ActiveUser, AppPath(org_id): AppPath<Uuid>) -> ApiResult<AppJson<OrgView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgRead)?;
    // Read with the principal, in one statement: no second round trip.
    Ok(AppJson(user.principal.org(org_id)?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
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
    AppPath(org_id): AppPath<Uuid>,
) -> ApiResult<AppJson<MemberList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgRead)?;
    let rows = db::orgs::list_members(&state.db, &ctx).await?;
    let items = rows.into_iter().map(MemberView::try_from).collect::<ApiResult<_>>()?;
    Ok(AppJson(MemberList { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    #[schema(example = "dev@example.com", format = Email)]
    pub email: String,
    pub role: Role,
    /// Initial password (12 to 1024 characters) for a new account, which becomes a member at
    /// once and must change it at first login. Ignored, and not kept, when the address has an
    /// account: that account is invited like any other. Not for bearer tokens.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    /// The new account, a member now.
    pub member: MemberView,
}

/// What adding a member did: made a new account a member, or invited the address.
pub enum Added {
    Member(AddedMember),
    Invited(InvitationView),
}

impl IntoResponse for Added {
    fn into_response(self) -> Response {
        match self {
            Self::Member(m) => (StatusCode::CREATED, AppJson(m)).into_response(),
            Self::Invited(i) => (StatusCode::ACCEPTED, AppJson(i)).into_response(),
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
        (status = 201, description = "A new account, given the password, is a member", body = AddedMember),
        (status = 202, description = "Invited; the invitation is pending until its invitee answers it", body = InvitationView),
        (status = 403, description = "Not allowed, a bearer token giving a password or the role owner (`session_required`), or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid e-mail, role or password", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_member(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
    AppJson(body): AppJson<AddMember>,
) -> ApiResult<Added> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    // A leaked token must not mint a login of its own, or an owner who could revoke the rest.
    if body.password.is_some() {
        ctx.method.require_session("creating an account with a password")?;
    }
    if body.role == Role::Owner {
        ctx.method.require_session("making an owner")?;
    }
    if body.role == Role::Owner && ctx.role != Role::Owner {
        return Err(ApiError::forbidden_as("owner_only", "only an owner can add an owner"));
    }
    let email = Email::parse(&body.email).map_err(|m| ApiError::field("email", m))?;
    let given = body
        .password
        .map(|p| NewPassword::parse(p).map_err(|m| ApiError::field("password", m)))
        .transpose()?;
    if db::orgs::member_by_email(&state.db, &ctx, &email).await?.is_some() {
        return Err(members::already_member(email.as_str()).into());
    }
    let invite = async || {
        let row = members::invite(&state, &meta, &ctx, &user.principal.email, &email, body.role).await?;
        invitation_view(row, state.clock.now())
    };
    // Without a password nothing asks whether the address has an account.
    let Some(given) = given else {
        return Ok(Added::Invited(invite().await?));
    };
    if db::users::find_id_by_email(&state.db, &email).await?.is_some() {
        return Ok(Added::Invited(invite().await?));
    }

    let hash = state.hasher.hash(given.into_secret()).await?;
    let user_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    db::users::insert(
        &mut *tx,
        db::users::NewUser { id: user_id, email: &email, password_hash: &hash, must_change_password: true },
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            (c == "users_email_key")
                .then(|| ApiError::conflict("conflict", "the account was created meanwhile; retry"))
        })
    })?;
    db::orgs::add_member(&mut *tx, &ctx, user_id, body.role)
        .await
        .map_err(|e| on_membership_conflict(e, email.as_str()))?;
    let member = db::orgs::get_member(&mut *tx, &ctx, user_id).await?.ok_or(ApiError::not_found("member"))?;
    Event::new("member.added", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("user:{user_id}"))
        .detail("email", email.as_str())
        .detail("role", body.role)
        .detail("account_created", true)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(Added::Member(AddedMember { member: member.try_into()? }))
}

#[derive(Debug, Deserialize, ToSchema)]
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
    AppPath((org_id, user_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<UpdateMember>,
) -> ApiResult<AppJson<MemberView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgAdmin)?;
    if body.role == Role::Owner {
        ctx.method.require_session("making an owner")?;
    }
    let mut tx = state.db.begin().await?;
    let owners = db::orgs::lock_owners(&mut tx, &ctx).await?;
    let target = db::orgs::get_member(&mut *tx, &ctx, user_id).await?.ok_or(ApiError::not_found("member"))?;
    let current = parse_role(&target.role)?;
    if (current == Role::Owner || body.role == Role::Owner) && ctx.role != Role::Owner {
        return Err(ApiError::forbidden_as("owner_only", "only an owner can make or unmake an owner"));
    }
    if current == Role::Owner && body.role != Role::Owner && owners.len() <= 1 {
        return Err(last_owner());
    }
    db::orgs::set_role(&mut *tx, &ctx, user_id, body.role, state.clock.now()).await?;
    let member = db::orgs::get_member(&mut *tx, &ctx, user_id).await?.ok_or(ApiError::not_found("member"))?;
    Event::new("member.role_changed", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("user:{user_id}"))
        .detail("from", current)
        .detail("to", body.role)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(AppJson(member.try_into()?))
}

fn last_owner() -> ApiError {
    ApiError::conflict("last_owner", "an organization must keep at least one owner; make another owner first")
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
    AppPath((org_id, user_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    if user_id != ctx.user_id || matches!(ctx.method, AuthMethod::Bearer { .. }) {
        ctx.require(Scope::OrgAdmin)?;
    }
    let mut tx = state.db.begin().await?;
    let owners = db::orgs::lock_owners(&mut tx, &ctx).await?;
    let target = db::orgs::get_member(&mut *tx, &ctx, user_id).await?.ok_or(ApiError::not_found("member"))?;
    if parse_role(&target.role)? == Role::Owner {
        if ctx.role != Role::Owner {
            return Err(ApiError::forbidden_as("owner_only", "only an owner can remove an owner"));
        }
        if owners.len() <= 1 {
            return Err(last_owner());
        }
    }
    db::orgs::remove_member(&mut *tx, &ctx, user_id).await?;
    Event::new("member.removed", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("user:{user_id}"))
        .detail("email", &target.email)
        .detail("role", &target.role)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names() {
        assert_eq!(org_name("  Acme ").unwrap(), "Acme");
        assert!(org_name("").is_err());
        assert!(org_name(&"x".repeat(101)).is_err());
        assert!(org_name("a\u{0}b").is_err());
    }
}
