//! Database parameters: the catalog, parameter groups, applying a group to a store, and the
//! values in force on its nodes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::parameter_groups::GroupRow;
use crate::domain::{Scope, StoreOperation};
use crate::error::{ApiError, ApiResult, FieldError, Problem, on_constraint};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery, Authenticated};
use crate::http::views::JobView;
use crate::jobs::{self, step};
use crate::provision::parameters::{ParamDef, catalog};
use crate::provision::sizing;
use crate::service::jobs::Enqueue;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(parameter_catalog))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(apply_group))
        .routes(routes!(store_parameters))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// `postgres`.
    #[param(pattern = "^postgres$")]
    vendor: String,
    /// A major version, e.g. `15`.
    version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParamList {
    pub items: Vec<ParamDef>,
}

/// The parameters a group may set for a vendor and version: type, allowed range or values,
/// default, and whether a change needs a restart.
#[utoipa::path(
    get, path = "/api/v1/content/parameters", tag = "parameters",
    security(("session" = []), ("bearer" = [])),
    params(CatalogQuery),
    responses(
        (status = 200, body = ParamList),
        (status = 422, description = "Unknown vendor or version", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn parameter_catalog(
    State(state): State<AppState>,
    _user: Authenticated,
    AppQuery(q): AppQuery<CatalogQuery>,
) -> ApiResult<AppJson<ParamList>> {
    let defs =
        catalog().for_vendor(&q.vendor).ok_or_else(|| ApiError::field("vendor", "must be postgres"))?;
    if let Some(v) = &q.version {
        if !state.plane.driver.postgres_versions().contains(v) {
            return Err(ApiError::field("version", format!("PostgreSQL {v} is not installed here")));
        }
    }
    Ok(AppJson(ParamList { items: defs.to_vec() }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub description: String,
    /// Parameter → setting, in the unit PostgreSQL reports (see the catalog).
    pub parameters: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<GroupRow> for GroupView {
    fn from(g: GroupRow) -> Self {
        Self {
            id: g.id,
            name: g.name,
            vendor: g.vendor,
            version: g.version,
            description: g.description,
            parameters: serde_json::from_value(g.parameters).unwrap_or_default(),
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// 1 to 100 characters, not all blank, without control characters.
    #[schema(example = "oltp", pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}$")]
    pub name: String,
    #[schema(example = "postgres", pattern = "^postgres$")]
    pub vendor: String,
    #[schema(example = "15")]
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Parameter → value, with or without units (`"work_mem": "16MB"`).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub description: String,
    /// The whole new set.
    pub parameters: BTreeMap<String, String>,
}

/// Every value checked against the catalog: 422 naming each bad one with its allowed range.
fn validate(vendor: &str, params: &BTreeMap<String, String>) -> ApiResult<serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut errors = vec![];
    for (name, value) in params {
        match catalog().canonical(vendor, name, value) {
            Ok(v) => {
                out.insert(name.clone(), serde_json::Value::String(v));
            }
            Err(message) => errors.push(FieldError { field: format!("parameters.{name}"), message }),
        }
    }
    if errors.is_empty() { Ok(serde_json::Value::Object(out)) } else { Err(ApiError::invalid(errors)) }
}

fn group_name(raw: &str) -> ApiResult<String> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::field("name", "must be 1 to 100 characters without control characters"));
    }
    Ok(n.to_owned())
}

/// The organization's parameter groups.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/parameter-groups", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = GroupList),
    )
)]
async fn list_groups(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
) -> ApiResult<AppJson<GroupList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let rows = db::parameter_groups::list(&state.db, &ctx).await?;
    Ok(AppJson(GroupList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Creates a parameter group; values are checked against the catalog, and against the bounds
/// of the largest instance size (a group no size can hold is refused).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/parameter-groups", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path)),
    request_body = CreateGroup,
    responses(
        (status = 201, body = GroupView),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value outside the catalog (the range is named), or one no instance size holds (the bound is named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
    AppJson(body): AppJson<CreateGroup>,
) -> ApiResult<(StatusCode, AppJson<GroupView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let name = group_name(&body.name)?;
    if catalog().for_vendor(&body.vendor).is_none() {
        return Err(ApiError::field("vendor", "must be postgres"));
    }
    if !state.plane.driver.postgres_versions().contains(&body.version) {
        return Err(ApiError::field("version", format!("PostgreSQL {} is not installed here", body.version)));
    }
    let parameters = validate(&body.vendor, &body.parameters)?;
    sizing::check_any(&state.plane.catalog.options().instance_sizes, &parameters)?;
    let now = state.clock.now();
    let row = GroupRow {
        id: Uuid::now_v7(),
        name,
        vendor: body.vendor,
        version: body.version,
        description: body.description.trim().to_owned(),
        parameters,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.db.begin().await?;
    db::parameter_groups::insert(&mut *tx, &ctx, &row).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "parameter_groups_name_key")
                .then(|| ApiError::conflict("name_taken", "a group of that name exists"))
        })
    })?;
    Event::new("parameter_group.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("parameter_group:{}", row.id))
        .detail("parameters", &row.parameters)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(row.into())))
}

/// One parameter group.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)),
    responses(
        (status = 200, body = GroupView),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_group(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, group_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<GroupView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let g = db::parameter_groups::get(&state.db, &ctx, group_id)
        .await?
        .ok_or(ApiError::not_found("parameter group"))?;
    Ok(AppJson(g.into()))
}

/// Replaces a group's parameters. Stores using it change when the group is applied again; the
/// new values must fit some instance size, and the size of every store using the group.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)),
    request_body = UpdateGroup,
    responses(
        (status = 200, body = GroupView),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value outside the catalog, or one no instance size or a store using the group cannot hold (the bound is named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, group_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<UpdateGroup>,
) -> ApiResult<AppJson<GroupView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let g = db::parameter_groups::get(&state.db, &ctx, group_id)
        .await?
        .ok_or(ApiError::not_found("parameter group"))?;
    let parameters = validate(&g.vendor, &body.parameters)?;
    sizing::check_any(&state.plane.catalog.options().instance_sizes, &parameters)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    for user in db::parameter_groups::users(&mut *tx, &ctx, group_id).await? {
        if let Some(size) = state.plane.catalog.instance_size(&user.instance_size) {
            sizing::check_user(&user.name, size, &parameters)?;
        }
    }
    db::parameter_groups::update(&mut *tx, &ctx, group_id, body.description.trim(), &parameters, now).await?;
    Event::new("parameter_group.updated", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("parameter_group:{group_id}"))
        .detail("parameters", &parameters)
        .record_in(&mut tx, now)
        .await?;
    let g = db::parameter_groups::get(&mut *tx, &ctx, group_id)
        .await?
        .ok_or(ApiError::not_found("parameter group"))?;
    tx.commit().await?;
    Ok(AppJson(g.into()))
}

/// Deletes a group no store uses.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A store uses it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, group_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    let gone = db::parameter_groups::delete(&mut *tx, &ctx, group_id).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "stores_parameter_group_fkey")
                .then(|| ApiError::conflict("group_in_use", "a store uses this group"))
        })
    })?;
    if !gone {
        return Err(ApiError::not_found("parameter group"));
    }
    Event::new("parameter_group.deleted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("parameter_group:{group_id}"))
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyGroup {
    pub group_id: Uuid,
}

/// Applies a group to a store: a job sets the parameters on every node (replicas first),
/// reloading, or restarting a node where a parameter needs it; its log says which. The store's
/// instance size must hold the group (422 names each parameter and the size's bound).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/parameter-group", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = ApplyGroup,
    responses(
        (status = 202, body = JobView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such group, one for another vendor or version, or one the store's instance size cannot hold (the parameter and bound are named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn apply_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ApplyGroup>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    let group = db::parameter_groups::get(&mut *tx, &ctx, body.group_id)
        .await?
        .ok_or_else(|| ApiError::field("group_id", "no such parameter group"))?;
    if group.vendor != store.vendor || group.version != store.version {
        return Err(ApiError::field(
            "group_id",
            format!(
                "the group is for {} {}, the store runs {} {}",
                group.vendor, group.version, store.vendor, store.version
            ),
        ));
    }
    let size = state.plane.catalog.instance_size(&store.instance_size).ok_or_else(|| {
        anyhow::anyhow!("instance size {} is no longer in the catalog", store.instance_size)
    })?;
    sizing::check(size, &group.parameters)?;
    store.status.check(StoreOperation::ApplyParameters)?;
    let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    nodes.sort_by_key(|n| n.role == "primary");
    let mut steps: Vec<String> = nodes.iter().map(|n| step::on(step::APPLY_PARAMETERS, n.id)).collect();
    steps.push(step::FINISH_AVAILABLE.into());
    let job = crate::service::jobs::enqueue(
        &mut tx,
        &state,
        &ctx,
        Enqueue::store(store_id, jobs::APPLY_PARAMETERS, steps),
    )
    .await?;
    let now = state.clock.now();
    db::parameter_groups::assign(&mut *tx, &ctx, store_id, group.id, now).await?;
    Event::new("store.parameter_group_applied", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("group", group.id)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeValue {
    pub node_id: Uuid,
    /// As the node reports it, in the catalog's unit.
    pub setting: Option<String>,
    /// Changed in the files, waiting for a restart.
    pub pending_restart: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParamInForce {
    pub name: String,
    pub unit: Option<String>,
    /// What the store's group sets, if it sets this parameter.
    pub group_setting: Option<String>,
    pub nodes: Vec<NodeValue>,
    /// A node's value differs from the group's.
    pub drift: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreParameters {
    pub group_id: Option<Uuid>,
    pub items: Vec<ParamInForce>,
}

/// The values in force, read from the nodes themselves, with drift from the store's group.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/parameters", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreParameters),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn store_parameters(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<StoreParameters>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    db::stores::get(&state.db, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    let group = db::parameter_groups::of_store(&state.db, ctx.org_id, store_id).await?;
    let group_id: Option<Uuid> =
        sqlx::query_scalar("select parameter_group_id from stores where org_id = $1 and id = $2")
            .bind(ctx.org_id)
            .bind(store_id)
            .fetch_one(&state.db)
            .await?;
    let defs = catalog().for_vendor("postgres").unwrap_or_default();
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    let mut per_node: Vec<(Uuid, NodeSettings)> = vec![];
    for n in db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await? {
        let Some(spec) =
            state.plane.node_spec(&state.db, ctx.org_id, store_id, n.id, state.clock.now()).await?
        else {
            continue;
        };
        let values = match state.plane.driver.superuser(&spec, "postgres").await {
            Ok(mut conn) => sqlx::query_as::<_, (String, String, bool)>(
                "select name, setting, pending_restart from pg_settings where name = any($1)",
            )
            .bind(&names)
            .fetch_all(&mut conn)
            .await?
            .into_iter()
            .map(|(k, v, p)| (k, (v, p)))
            .collect(),
            Err(_) => BTreeMap::new(),
        };
        per_node.push((n.id, values));
    }
    let items = defs
        .iter()
        .map(|d| {
            let want =
                group.as_ref().and_then(|g| g.get(&d.name)).and_then(|v| v.as_str()).map(str::to_owned);
            let nodes: Vec<NodeValue> = per_node
                .iter()
                .map(|(id, vals)| NodeValue {
                    node_id: *id,
                    setting: vals.get(&d.name).map(|v| v.0.clone()),
                    pending_restart: vals.get(&d.name).is_some_and(|v| v.1),
                })
                .collect();
            let drift = want.as_ref().is_some_and(|w| nodes.iter().any(|n| !same(n.setting.as_deref(), w)));
            ParamInForce { name: d.name.clone(), unit: d.unit.clone(), group_setting: want, nodes, drift }
        })
        .collect();
    Ok(AppJson(StoreParameters { group_id, items }))
}

/// A node's settings: name → (setting, pending restart).
type NodeSettings = BTreeMap<String, (String, bool)>;

/// Settings compare as numbers when both are numbers (`1.10` is `1.1`).
fn same(have: Option<&str>, want: &str) -> bool {
    match (have.and_then(|h| h.parse::<f64>().ok()), want.parse::<f64>().ok()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        _ => have == Some(want),
    }
}
