//! Stores: managed PostgreSQL clusters. Every change that touches the data plane is a job,
//! returned by the call that started it. The operations are `service::stores` and
//! `service::nodes`; here they are extracted, authorized and rendered.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::stores::ListFilter;
use crate::domain::{NodeId, OrgId, Scope, StoreId, StoreStatus};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery, idempotency_key, if_match};
use crate::http::page::PageRequest;
use crate::http::respond::{Accepted, etag, store_location};
use crate::http::views::{JobView, StoreAccepted, StoreCredentials, StoreView, view};
use crate::service::nodes;
use crate::service::stores::{
    self, ADMIN_USER, CreateStore, Created, DATABASE, NewStore, Reply, UpdateStore,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(get_store, update_store, delete_store))
        .routes(routes!(add_node))
        .routes(routes!(remove_node))
        .routes(routes!(restart_node))
        .routes(routes!(repair_store))
        .routes(routes!(reveal_credentials))
}

/// The first answer to a create: the store, its job, and its credentials.
fn render_created(new: NewStore) -> crate::domain::Result<Reply> {
    let store = view(new.detail);
    let credentials = StoreCredentials {
        username: ADMIN_USER.into(),
        password: new.admin_password,
        database: DATABASE.into(),
        uri: store.connection.primary.as_ref().map(|p| p.uri.clone()),
    };
    let body = StoreAccepted { store, job: JobView::from(new.job), credentials: Some(credentials) };
    let body = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    Ok(Reply { status: StatusCode::ACCEPTED.as_u16(), body })
}

/// Creates a store: 202 with the store (`deploying`), the job that builds it, and the database
/// credentials — the password appears here and in `credentials/reveal` only. With an
/// `Idempotency-Key`, a retry with the same key and body replays this response and starts
/// nothing; the same key with another body is 422.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$", description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    request_body = CreateStore,
    responses(
        (status = 202, body = StoreAccepted, headers(("Location" = String))),
        (status = 409, description = "The name is taken, or the VPC is not available or has no address left", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field outside the catalog, a VPC that is not this organization's or not in the store's cloud and region, or an Idempotency-Key reused with another body; or `quota_exceeded`: the organization's quota of stores or nodes (named, with its limit and usage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`capacity_exhausted`: this Berth has no node port left (`Retry-After`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
async fn create_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    headers: HeaderMap,
    AppPath(org_id): AppPath<OrgId>,
    AppJson(body): AppJson<CreateStore>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let key = idempotency_key(&headers)?;
    let actor = &user.principal.email;
    match stores::create(&state, &meta, &ctx, actor, &body, key.as_deref(), render_created).await? {
        Created::New { store_id, revision, reply } => {
            Ok(Accepted::new(reply.body, store_location(org_id, store_id)).revision(revision).into_response())
        }
        Created::Replayed(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::ACCEPTED);
            let mut res = (status, axum::Json(reply.body)).into_response();
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(res)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StoreQuery {
    /// Only stores in this status.
    status: Option<StoreStatus>,
    /// Only stores with this tag.
    tag: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreList {
    pub items: Vec<StoreView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The organization's stores, oldest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), StoreQuery),
    responses(
        (status = 200, body = StoreList),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_stores(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppQuery(q): AppQuery<StoreQuery>,
) -> ApiResult<AppJson<StoreList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let filter =
        ListFilter { status: q.status, tag: q.tag.as_deref(), after: page.after, limit: page.fetch() };
    let rows = stores::list(&state, &ctx, &filter).await?;
    let (rows, next_cursor) = page.finish(rows, |s| (s.created_at, s.id.into()));
    let items = stores::details(&state, &ctx, rows).await?.into_iter().map(view).collect();
    Ok(AppJson(StoreList { items, next_cursor }))
}

/// One store, with its nodes, endpoints and the job in progress. `ETag` is its revision.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreView, headers(("ETag" = String))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_store(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let detail = stores::get(&state, &ctx, store_id).await?;
    let revision = detail.store.revision;
    Ok(([(header::ETAG, etag(revision))], axum::Json(view(detail))).into_response())
}

/// Changes a store. With `If-Match`, only if the store is still at that revision (412 if not).
/// Name, tags and deletion protection change at once; a size change starts a job (202). A new
/// instance size must hold the store's parameter group.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag of the store as read")),
    request_body = UpdateStore,
    responses(
        (status = 200, description = "Changed", body = StoreView, headers(("ETag" = String))),
        (status = 202, description = "A size change is under way", body = StoreAccepted, headers(("ETag" = String), ("Location" = String, description = "The store"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, or the name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The store changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, or an instance size that cannot hold the store's parameter group (the parameter and bound are named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    headers: HeaderMap,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<UpdateStore>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let want = if_match(&headers);
    let updated = stores::update(&state, &meta, &ctx, &user.principal.email, store_id, want, &body).await?;
    let (store, revision) = (view(updated.detail), updated.revision);
    Ok(match updated.job {
        Some(job) => {
            let body = StoreAccepted { store, job: job.into(), credentials: None };
            Accepted::new(body, store_location(org_id, store_id)).revision(revision).into_response()
        }
        None => ([(header::ETAG, etag(revision))], axum::Json(store)).into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the store's backups and archived WAL. By default they are kept until their
    /// retention runs out, so that the store can be made again from them (`restore_from`).
    #[serde(default)]
    delete_backups: bool,
}

/// Starts a store's deletion: its servers are stopped and their data removed; its backups are
/// kept unless `delete_backups=true`. 409 while deletion protection is on.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), DeleteQuery),
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Deletion protection is on, a job is in progress, or the store is being deleted (`store_busy`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<DeleteQuery>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    if q.delete_backups {
        ctx.require(Scope::BackupsWrite)?;
    }
    let actor = &user.principal.email;
    Ok(Accepted::job(stores::delete(&state, &meta, &ctx, actor, store_id, q.delete_backups).await?))
}

/// 202 with the store after a change of its nodes, and the job that makes it.
fn node_change(org_id: OrgId, change: nodes::NodeChanged) -> Accepted<StoreAccepted> {
    let (store_id, revision) = (change.detail.store.id, change.detail.store.revision);
    let body = StoreAccepted { store: view(change.detail), job: change.job.into(), credentials: None };
    Accepted::new(body, store_location(org_id, store_id)).revision(revision)
}

/// Adds a streaming replica, within the organization's quota of nodes.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted, headers(("ETag" = String), ("Location" = String, description = "The store"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, the store has the most nodes allowed, or its VPC has no address left", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`quota_exceeded`: the organization's quota of nodes (with its limit and usage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`capacity_exhausted`: this Berth has no node port left (`Retry-After`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
async fn add_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<Accepted<StoreAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let change = nodes::add(&state, &meta, &ctx, &user.principal.email, store_id).await?;
    Ok(node_change(org_id, change))
}

/// Removes a node. The primary cannot be removed while replicas exist (remove them first, or
/// delete the store).
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted, headers(("ETag" = String), ("Location" = String, description = "The store"))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The primary, or a job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, node_id)): AppPath<(OrgId, StoreId, NodeId)>,
) -> ApiResult<Accepted<StoreAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let change = nodes::remove(&state, &meta, &ctx, &user.principal.email, store_id, node_id).await?;
    Ok(node_change(org_id, change))
}

/// Restarts one node.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/restart", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restart_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, node_id)): AppPath<(OrgId, StoreId, NodeId)>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let job = nodes::restart(&state, &meta, &ctx, &user.principal.email, store_id, node_id).await?;
    Ok(Accepted::job(job))
}

/// Rebuilds the nodes that are not running: replicas are copied afresh from the primary; a
/// primary is started again.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/repair", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn repair_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    Ok(Accepted::job(stores::repair(&state, &meta, &ctx, &user.principal.email, store_id).await?))
}

/// The store's database credentials, password included. Audited.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/credentials/reveal", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreCredentials),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reveal_credentials(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<StoreCredentials>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let revealed = stores::reveal_credentials(&state, &meta, &ctx, &user.principal.email, store_id).await?;
    let connection = view(revealed.detail).connection;
    Ok(AppJson(StoreCredentials {
        username: connection.username,
        password: revealed.password.expose_secret().to_owned(),
        database: connection.database,
        uri: connection.primary.map(|p| p.uri),
    }))
}
