//! Parameter groups: checked against the catalog and the instance sizes, applied to a store by a
//! job, and the values in force on a store's nodes, read from the nodes themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::parameter_groups::GroupRow;
use crate::domain::{
    Ctx, Error, FieldError, NodeId, NodeRole, Precondition, Result, StoreId, StoreOperation, on_constraint,
};
use crate::jobs::{Step, kinds};
pub use crate::provision::parameters::ParamDef;
use crate::provision::parameters::catalog;
use crate::provision::sizing;
use crate::service::jobs::{Enqueue, enqueue};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
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

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub description: String,
    /// The whole new set.
    pub parameters: BTreeMap<String, String>,
}

/// Every value checked against the catalog and made canonical: each bad one is named with its
/// allowed range.
pub fn validate(vendor: &str, params: &BTreeMap<String, String>) -> Result<serde_json::Value> {
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
    if errors.is_empty() { Ok(serde_json::Value::Object(out)) } else { Err(Error::invalid(errors)) }
}

/// A group's name, trimmed: 1 to 100 characters without control characters.
pub fn group_name(raw: &str) -> Result<String> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(Error::field("name", "must be 1 to 100 characters without control characters"));
    }
    Ok(n.to_owned())
}

fn vendor_defs(vendor: &str) -> Result<&'static [ParamDef]> {
    catalog().for_vendor(vendor).ok_or_else(|| Error::field("vendor", "must be postgres"))
}

fn installed(state: &AppState, version: &str) -> Result<()> {
    if !state.plane.driver.postgres_versions().contains(&version.to_owned()) {
        return Err(Error::field("version", format!("PostgreSQL {version} is not installed here")));
    }
    Ok(())
}

/// The parameters a group may set for a vendor (and a version installed here).
pub fn catalog_of(state: &AppState, vendor: &str, version: Option<&str>) -> Result<Vec<ParamDef>> {
    let defs = vendor_defs(vendor)?;
    if let Some(v) = version {
        installed(state, v)?;
    }
    Ok(defs.to_vec())
}

pub async fn list(state: &AppState, ctx: &Ctx) -> Result<Vec<GroupRow>> {
    Ok(db::parameter_groups::list(&state.db, ctx).await?)
}

pub async fn get(state: &AppState, ctx: &Ctx, group_id: Uuid) -> Result<GroupRow> {
    db::parameter_groups::get(&state.db, ctx, group_id).await?.ok_or(Error::NotFound("parameter group"))
}

/// Makes a group; its values must be in the catalog and fit the largest instance size.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    cmd: CreateGroup,
) -> Result<GroupRow> {
    let name = group_name(&cmd.name)?;
    vendor_defs(&cmd.vendor)?;
    installed(state, &cmd.version)?;
    let parameters = validate(&cmd.vendor, &cmd.parameters)?;
    sizing::check_any(&state.plane.catalog.options().instance_sizes, &parameters)?;
    let now = state.clock.now();
    let row = GroupRow {
        id: Uuid::now_v7(),
        name,
        vendor: cmd.vendor,
        version: cmd.version,
        description: cmd.description.trim().to_owned(),
        parameters,
        created_at: now,
        updated_at: now,
        revision: 1,
    };
    let mut tx = state.db.begin().await?;
    db::parameter_groups::insert(&mut *tx, ctx, &row).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "parameter_groups_name_key")
                .then(|| Error::conflict("name_taken", "a group of that name exists"))
        })
    })?;
    Event::new("parameter_group.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("parameter_group:{}", row.id))
        .detail("parameters", &row.parameters)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a group's parameters; they must fit some instance size and the size of every store
/// using the group. With a precondition, only if the group is still at that revision.
pub async fn update(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    group_id: Uuid,
    precondition: Option<Precondition>,
    cmd: &UpdateGroup,
) -> Result<GroupRow> {
    let mut tx = state.db.begin().await?;
    let g = db::parameter_groups::get_for_update(&mut *tx, ctx, group_id)
        .await?
        .ok_or(Error::NotFound("parameter group"))?;
    if precondition.is_some_and(|p| !p.holds(g.revision)) {
        return Err(Error::PreconditionFailed);
    }
    let parameters = validate(&g.vendor, &cmd.parameters)?;
    sizing::check_any(&state.plane.catalog.options().instance_sizes, &parameters)?;
    let now = state.clock.now();
    for user in db::parameter_groups::users(&mut *tx, ctx, group_id).await? {
        if let Some(size) = state.plane.catalog.instance_size(&user.instance_size) {
            sizing::check_user(&user.name, size, &parameters)?;
        }
    }
    db::parameter_groups::update(&mut *tx, ctx, group_id, cmd.description.trim(), &parameters, now).await?;
    Event::new("parameter_group.updated", meta)
        .in_ctx(ctx, actor)
        .target(format!("parameter_group:{group_id}"))
        .detail("parameters", &parameters)
        .record_in(&mut tx, now)
        .await?;
    let g = db::parameter_groups::get(&mut *tx, ctx, group_id)
        .await?
        .ok_or(Error::NotFound("parameter group"))?;
    tx.commit().await?;
    Ok(g)
}

/// Deletes a group no store uses.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    group_id: Uuid,
) -> Result<()> {
    let mut tx = state.db.begin().await?;
    let gone = db::parameter_groups::delete(&mut *tx, ctx, group_id).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "stores_parameter_group_fkey")
                .then(|| Error::conflict("group_in_use", "a store uses this group"))
        })
    })?;
    if !gone {
        return Err(Error::NotFound("parameter group"));
    }
    Event::new("parameter_group.deleted", meta)
        .in_ctx(ctx, actor)
        .target(format!("parameter_group:{group_id}"))
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyGroup {
    pub group_id: Uuid,
}

/// Applies a group of the store's vendor and version, which its instance size holds, to a store
/// whose status allows it: the job sets the parameters on every node, replicas first.
pub async fn apply(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &ApplyGroup,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let group = db::parameter_groups::get(&mut *tx, ctx, cmd.group_id)
        .await?
        .ok_or_else(|| Error::field("group_id", "no such parameter group"))?;
    if group.vendor != store.vendor || group.version != store.version {
        return Err(Error::field(
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
    nodes.sort_by_key(|n| n.role == NodeRole::Primary);
    let mut steps: Vec<Step> = nodes.iter().map(|n| Step::ApplyParameters(n.id)).collect();
    steps.push(Step::FinishAvailable);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::ApplyParameters>(store_id, steps)).await?;
    let now = state.clock.now();
    db::parameter_groups::assign(&mut *tx, ctx, store_id, group.id, now).await?;
    Event::new("store.parameter_group_applied", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("group", group.id)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(job)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeValue {
    #[schema(value_type = Uuid)]
    pub node_id: NodeId,
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

/// A node's settings: name → (setting, pending restart).
type NodeSettings = BTreeMap<String, (String, bool)>;

/// The values in force on each node of the store (a node that does not answer reports none),
/// with drift from the store's group.
pub async fn in_force(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<StoreParameters> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let group = db::parameter_groups::of_store(&state.db, ctx.org_id, store_id).await?;
    let group_id = db::parameter_groups::group_id_of_store(&state.db, ctx.org_id, store_id).await?;
    let defs = catalog().for_vendor("postgres").unwrap_or_default();
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    let mut per_node: Vec<(NodeId, NodeSettings)> = vec![];
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
    Ok(StoreParameters { group_id, items })
}

/// Settings compare as numbers when both are numbers (`1.10` is `1.1`).
fn same(have: Option<&str>, want: &str) -> bool {
    match (have.and_then(|h| h.parse::<f64>().ok()), want.parse::<f64>().ok()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        _ => have == Some(want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_trimmed_and_bounded() {
        assert_eq!(group_name("  oltp ").unwrap(), "oltp");
        assert!(group_name("   ").is_err());
        assert!(group_name(&"x".repeat(101)).is_err());
        assert_eq!(group_name(&"x".repeat(100)).unwrap().len(), 100);
        assert!(group_name("a\u{7}b").is_err());
    }

    #[test]
    fn validation_names_every_bad_value_and_keeps_good_ones_canonical() {
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let ok = validate("postgres", &params(&[("jit", " TRUE "), ("log_connections", "0")])).unwrap();
        assert_eq!(ok, serde_json::json!({"jit": "on", "log_connections": "off"}));
        let bad = params(&[("jit", "maybe"), ("no_such_parameter", "1"), ("log_connections", "on")]);
        let Err(Error::Invalid { errors, .. }) = validate("postgres", &bad) else { panic!("accepted") };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["parameters.jit", "parameters.no_such_parameter"]);
        assert_eq!(validate("postgres", &BTreeMap::new()).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn numeric_settings_compare_as_numbers() {
        assert!(same(Some("1.10"), "1.1"));
        assert!(same(Some("on"), "on"));
        assert!(!same(Some("2"), "1"));
        assert!(!same(None, "1"));
    }
}
