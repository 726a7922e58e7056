//! Databases and database users inside a store, made on its primary (replicas follow by
//! replication). Berth never keeps a database user's password: it is returned once.

use axum::extract::State;
use axum::http::StatusCode;
use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::db_users::DbUserRow;
use crate::domain::{Cidr, Ctx, NewPassword, NodeState, Scope, StoreOperation};
use crate::error::{ApiError, ApiResult, Problem, on_constraint, on_duplicate};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::provision::NodeSpec;
use crate::provision::sql::{self, DatabaseInfo, Privilege};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_databases, create_database))
        .routes(routes!(drop_database))
        .routes(routes!(list_users, create_user))
        .routes(routes!(drop_user))
        .routes(routes!(rotate_password))
}

/// Role and database names: lower-case identifiers, 1 to 63 characters, not PostgreSQL's or
/// Berth's own.
fn identifier(field: &str, raw: &str, reserved: &[&str]) -> ApiResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !raw.starts_with("pg_");
    if !ok {
        return Err(ApiError::field(
            field,
            "must be 1 to 63 of a-z, 0-9 and _, starting with a letter or _, and not starting with pg_",
        ));
    }
    if reserved.contains(&raw) {
        return Err(ApiError::field(field, format!("{raw} is reserved")));
    }
    Ok(raw.to_owned())
}

/// A database named in a request must be the customer's: PostgreSQL's own are refused by name.
fn customer_database(field: &str, name: &str) -> ApiResult<()> {
    if sql::SYSTEM_DATABASES.contains(&name) {
        return Err(ApiError::field(field, format!("{name} is a system database")));
    }
    Ok(())
}

fn database_exists(name: &str) -> ApiError {
    ApiError::conflict("database_exists", format!("database {name} exists"))
}

fn db_user_exists(name: &str) -> ApiError {
    ApiError::conflict("db_user_exists", format!("user {name} exists"))
}

/// The spec of the store's primary, if the store can take the change now.
async fn primary(state: &AppState, ctx: &Ctx, store_id: Uuid) -> ApiResult<NodeSpec> {
    let store = db::stores::get(&state.db, ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    store.status.check(StoreOperation::ChangeDatabases)?;
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await?;
    let p = nodes.iter().find(|n| n.role == "primary" && n.state == NodeState::Running).ok_or_else(|| {
        ApiError::conflict("no_primary", "the store's primary is not running; repair the store")
    })?;
    state
        .plane
        .node_spec(&state.db, ctx.org_id, store_id, p.id, state.clock.now())
        .await?
        .ok_or(ApiError::not_found("store"))
}

fn reserved_roles(spec: &NodeSpec) -> Vec<&str> {
    vec![spec.admin_user.as_str(), crate::pg::SUPERUSER, "replicator", "postgres", "public"]
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<DatabaseList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let spec = primary(&state, &ctx, store_id).await?;
    Ok(AppJson(DatabaseList { items: sql::databases(state.plane.driver.as_ref(), &spec).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// 1 to 63 of a-z, 0-9 and _, starting with a letter or _, and not starting with `pg_`.
    #[schema(example = "orders", pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub name: String,
}

/// Creates a database owned by the store's admin user.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/databases", tag = "databases",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = CreateDatabase,
    responses(
        (status = 201, body = DatabaseInfo),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It exists, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_database(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<CreateDatabase>,
) -> ApiResult<(StatusCode, AppJson<DatabaseInfo>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let name = identifier("name", &body.name, &sql::SYSTEM_DATABASES)?;
    let spec = primary(&state, &ctx, store_id).await?;
    let driver = state.plane.driver.as_ref();
    if sql::database_exists(driver, &spec, &name).await? {
        return Err(database_exists(&name));
    }
    sql::create_database(driver, &spec, &name)
        .await
        .map_err(|e| on_duplicate(e, || database_exists(&name)))?;
    for u in db::db_users::list(&state.db, &ctx, store_id).await? {
        // Users of "all databases" to read or write get the new one too (admins own it).
        match Privilege::parse(&u.privilege) {
            Some(p @ (Privilege::Read | Privilege::Readwrite)) if u.database.is_none() => {
                sql::grant(driver, &spec, &u.name, p, Some(&name)).await?;
            }
            _ => {}
        }
    }
    Event::new("database.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("database", &name)
        .record(&state.db, state.clock.now())
        .await?;
    let info = sql::databases(driver, &spec).await?.into_iter().find(|d| d.name == name);
    Ok((StatusCode::CREATED, AppJson(info.ok_or_else(|| anyhow::anyhow!("database {name} vanished"))?)))
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
    AppPath((org_id, store_id, name)): AppPath<(Uuid, Uuid, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    customer_database("name", &name)?;
    let spec = primary(&state, &ctx, store_id).await?;
    let driver = state.plane.driver.as_ref();
    if !sql::database_exists(driver, &spec, &name).await? {
        return Err(ApiError::not_found("database"));
    }
    let holders: Vec<String> = db::db_users::list(&state.db, &ctx, store_id)
        .await?
        .into_iter()
        .filter(|u| u.database.as_deref() == Some(name.as_str()))
        .map(|u| u.name)
        .collect();
    if !holders.is_empty() {
        return Err(ApiError::conflict(
            "database_in_use",
            format!("users {} are granted this database only; drop them first", holders.join(", ")),
        ));
    }
    sql::drop_database(driver, &spec, &name).await?;
    Event::new("database.dropped", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("database", &name)
        .record(&state.db, state.clock.now())
        .await?;
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDbUser {
    /// As a database's name.
    #[schema(example = "app_reader", pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub username: String,
    /// 12 to 1024 characters. Left out: one is generated. Either way it is returned once and
    /// Berth does not keep it.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<SecretString>,
    /// `read`, `readwrite` or `admin`.
    pub privileges: Privilege,
    /// One database; left out: all of them.
    #[schema(pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub database: Option<String>,
    /// A network (CIDR or address) the user may connect from, within the firewall.
    pub host: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDbUser {
    pub user: DbUserView,
    /// Shown this once.
    pub password: String,
}

fn generated_password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<DbUserList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    db::stores::get(&state.db, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    let rows = db::db_users::list(&state.db, &ctx, store_id).await?;
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
        (status = 201, body = CreatedDbUser),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user exists, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, password, privilege, database or host", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_user(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<CreateDbUser>,
) -> ApiResult<(StatusCode, AppJson<CreatedDbUser>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let spec = primary(&state, &ctx, store_id).await?;
    let name = identifier("username", &body.username, &reserved_roles(&spec))?;
    let password = match body.password {
        Some(p) => NewPassword::parse(p).map_err(|m| ApiError::field("password", m))?.into_secret(),
        None => SecretString::from(generated_password()),
    };
    let host = body.host.as_deref().map(Cidr::parse).transpose().map_err(|m| ApiError::field("host", m))?;
    let driver = state.plane.driver.as_ref();
    if let Some(d) = &body.database {
        customer_database("database", d)?;
        if !sql::database_exists(driver, &spec, d).await? {
            return Err(ApiError::field("database", format!("{d} does not exist in this store")));
        }
    }
    if db::db_users::get(&state.db, &ctx, store_id, &name).await?.is_some() {
        return Err(db_user_exists(&name));
    }
    let row = DbUserRow {
        id: Uuid::now_v7(),
        name: name.clone(),
        privilege: body.privileges.as_str().into(),
        database: body.database.clone(),
        host: host.map(|h| h.net()),
        created_at: state.clock.now(),
    };
    // The record first, in a transaction that commits only once the role exists on the node.
    let mut tx = state.db.begin().await?;
    // A concurrent create of the same name waits here on the unique index for this one to end.
    db::db_users::insert(&mut *tx, &ctx, store_id, &row)
        .await
        .map_err(|e| on_constraint(e, |c| (c == "db_users_name_key").then(|| db_user_exists(&name))))?;
    Event::new("db_user.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("user", &name)
        .detail("privilege", body.privileges)
        .detail("database", &body.database)
        .detail("host", host.map(|h| h.to_string()))
        .record_in(&mut tx, state.clock.now())
        .await?;
    sql::create_user(driver, &spec, &name, &password, body.privileges, body.database.as_deref())
        .await
        .map_err(|e| on_duplicate(e, || db_user_exists(&name)))?;
    tx.commit().await?;
    if host.is_some() {
        apply_access(&state, &ctx, store_id).await?;
    }
    Ok((
        StatusCode::CREATED,
        AppJson(CreatedDbUser { user: row.try_into()?, password: password.expose_secret().to_owned() }),
    ))
}

async fn apply_access(state: &AppState, ctx: &Ctx, store_id: Uuid) -> ApiResult<()> {
    for n in db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await? {
        if let Some(spec) =
            state.plane.node_spec(&state.db, ctx.org_id, store_id, n.id, state.clock.now()).await?
        {
            state.plane.driver.apply_access(&spec).await?;
        }
    }
    Ok(())
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
    )
)]
async fn drop_user(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, name)): AppPath<(Uuid, Uuid, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let spec = primary(&state, &ctx, store_id).await?;
    let mut tx = state.db.begin().await?;
    if !db::db_users::delete(&mut *tx, &ctx, store_id, &name).await? {
        return Err(ApiError::not_found("database user"));
    }
    Event::new("db_user.dropped", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("user", &name)
        .record_in(&mut tx, state.clock.now())
        .await?;
    sql::drop_user(state.plane.driver.as_ref(), &spec, &name).await?;
    tx.commit().await?;
    apply_access(&state, &ctx, store_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotatePassword {
    /// The new password (12 to 1024 characters); left out: one is generated.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<SecretString>,
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
    AppPath((org_id, store_id, name)): AppPath<(Uuid, Uuid, String)>,
    AppJson(body): AppJson<RotatePassword>,
) -> ApiResult<AppJson<RotatedPassword>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let spec = primary(&state, &ctx, store_id).await?;
    db::db_users::get(&state.db, &ctx, store_id, &name).await?.ok_or(ApiError::not_found("database user"))?;
    let password = match body.password {
        Some(p) => NewPassword::parse(p).map_err(|m| ApiError::field("password", m))?.into_secret(),
        None => SecretString::from(generated_password()),
    };
    sql::set_password(state.plane.driver.as_ref(), &spec, &name, &password).await?;
    Event::new("db_user.password_rotated", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("user", &name)
        .record(&state.db, state.clock.now())
        .await?;
    Ok(AppJson(RotatedPassword { username: name, password: password.expose_secret().to_owned() }))
}
