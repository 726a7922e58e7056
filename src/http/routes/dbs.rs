//! Databases and database users inside a store, made on its primary (replicas follow by
//! replication). Berth never keeps a database user's password: it is returned once.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::db_users::DbUserRow;
use crate::domain::{OrgId, Scope, StoreId};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::Created;
use crate::service::databases::{
    self, CreateDatabase, CreateDbUser, DatabaseInfo, Privilege, RotatePassword,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_databases, create_database))
        .routes(routes!(drop_database))
        .routes(routes!(list_users, create_user))
        .routes(routes!(drop_user))
        .routes(routes!(rotate_password))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseList {
    pub items: Vec<DatabaseInfo>,
}

/// The store's databases, read from its primary: owner, size and number of tables.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/databases", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = DatabaseList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The store is not running", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_databases(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<DatabaseList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(AppJson(DatabaseList { items: databases::list_databases(&state, &ctx, store_id).await? }))
}

/// Creates a database owned by the store's admin user.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/databases", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = CreateDatabase,
    responses(
        (status = 201, body = DatabaseInfo, headers(("Location" = String, description = "The database (as `DELETE` takes it)"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It exists, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_database(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<CreateDatabase>,
) -> ApiResult<Created<DatabaseInfo>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let info =
        databases::create_database(&state, &meta, &ctx, &user.principal.email, store_id, &body).await?;
    let location = format!("/api/v1/orgs/{org_id}/stores/{store_id}/databases/{}", info.name);
    Ok(Created::new(info, location))
}

/// Drops a database and everything in it, ending its sessions.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/databases/{name}", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("name" = String, Path)),
    responses(
        (status = 204, description = "Dropped"),
        (status = 404, description = "No such store or database", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The store is not running, or users are granted only this database", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A system database (`postgres`, `template0`, `template1`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn drop_database(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, name)): AppPath<(OrgId, StoreId, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    databases::drop_database(&state, &meta, &ctx, &user.principal.email, store_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DbUserView {
    pub username: String,
    pub privileges: Privilege,
    /// The database the privilege applies to; absent: every database.
    pub database: Option<String>,
    /// The network the user may connect from (within the store's firewall); absent: anywhere
    /// the firewall allows.
    pub host: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl TryFrom<DbUserRow> for DbUserView {
    type Error = ApiError;
    fn try_from(u: DbUserRow) -> ApiResult<Self> {
        Ok(Self {
            privileges: Privilege::parse(&u.privilege)
                .ok_or_else(|| anyhow::anyhow!("privilege {}", u.privilege))?,
            username: u.name,
            database: u.database,
            host: u.host.map(|h| h.to_string()),
            created_at: u.created_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DbUserList {
    pub items: Vec<DbUserView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDbUser {
    pub user: DbUserView,
    /// Shown this once.
    pub password: String,
}

/// A password as the one response that shows it.
fn shown(password: &SecretString) -> String {
    password.expose_secret().to_owned()
}

/// The store's database users and what they may do.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/db-users", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = DbUserList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<DbUserList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let rows = databases::list_users(&state, &ctx, store_id).await?;
    Ok(AppJson(DbUserList { items: rows.into_iter().map(TryInto::try_into).collect::<ApiResult<_>>()? }))
}

/// Creates a database user with a privilege on one database or all, and optionally a host
/// network it must connect from. The password is in this response only.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/db-users", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = CreateDbUser,
    responses(
        (status = 201, body = CreatedDbUser, headers(("Location" = String, description = "The user (as `DELETE` takes it)"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user exists, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, password, privilege, database or host", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Made, but a node could not take its host network now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_user(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<CreateDbUser>,
) -> ApiResult<Created<CreatedDbUser>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let (row, password) =
        databases::create_user(&state, &meta, &ctx, &user.principal.email, store_id, body).await?;
    let location = format!("/api/v1/orgs/{org_id}/stores/{store_id}/db-users/{}", row.name);
    Ok(Created::new(CreatedDbUser { user: row.try_into()?, password: shown(&password) }, location))
}

/// Drops a database user; what it owned passes to the store's admin user.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/db-users/{name}", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("name" = String, Path)),
    responses(
        (status = 204, description = "Dropped"),
        (status = 404, description = "No such store or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dropped, but a node could not take its new access now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn drop_user(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, name)): AppPath<(OrgId, StoreId, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    databases::drop_user(&state, &meta, &ctx, &user.principal.email, store_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedPassword {
    pub username: String,
    /// Shown this once.
    pub password: String,
}

/// Gives a database user a new password; the old one stops working at once.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/db-users/{name}/rotate-password", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("name" = String, Path)),
    request_body = RotatePassword,
    responses(
        (status = 200, body = RotatedPassword),
        (status = 404, description = "No such store or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid password", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn rotate_password(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, name)): AppPath<(OrgId, StoreId, String)>,
    AppJson(body): AppJson<RotatePassword>,
) -> ApiResult<AppJson<RotatedPassword>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let password =
        databases::rotate_password(&state, &meta, &ctx, &user.principal.email, store_id, &name, body).await?;
    Ok(AppJson(RotatedPassword { username: name, password: shown(&password) }))
}
