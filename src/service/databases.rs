//! Databases and database users inside a store, made on its primary (replicas follow by
//! replication). Berth never keeps a database user's password: it is returned once.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::db_users::DbUserRow;
use crate::domain::{
    Cidr, Ctx, Error, NewPassword, NodeRole, NodeState, Result, StoreId, StoreOperation, on_constraint,
};
use crate::provision::NodeSpec;
use crate::provision::sql::{self, SYSTEM_DATABASES};
pub use crate::provision::sql::{DatabaseInfo, Privilege};
use crate::service::access;

/// Role and database names: lower-case identifiers, 1 to 63 characters, not PostgreSQL's or
/// Berth's own. Such a name needs no quoting in SQL.
pub fn identifier(field: &str, raw: &str, reserved: &[&str]) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !raw.starts_with("pg_");
    if !ok {
        return Err(Error::field(
            field,
            "must be 1 to 63 of a-z, 0-9 and _, starting with a letter or _, and not starting with pg_",
        ));
    }
    if reserved.contains(&raw) {
        return Err(Error::field(field, format!("{raw} is reserved")));
    }
    Ok(raw.to_owned())
}

/// A database named in a request must be the customer's: PostgreSQL's own are refused by name.
pub fn customer_database(field: &str, name: &str) -> Result<()> {
    if SYSTEM_DATABASES.contains(&name) {
        return Err(Error::field(field, format!("{name} is a system database")));
    }
    Ok(())
}

/// The roles a customer may not name: the store's admin, Berth's superuser and replication
/// roles, and PostgreSQL's own.
pub fn reserved_roles(admin_user: &str) -> [&str; 5] {
    [admin_user, crate::pg::SUPERUSER, "replicator", "postgres", "public"]
}

fn database_exists(name: &str) -> Error {
    Error::conflict("database_exists", format!("database {name} exists"))
}

fn db_user_exists(name: &str) -> Error {
    Error::conflict("db_user_exists", format!("user {name} exists"))
}

/// The password asked for, checked, or one generated.
fn password(asked: Option<SecretString>) -> Result<SecretString> {
    match asked {
        Some(p) => Ok(NewPassword::parse(p).map_err(|m| Error::field("password", m))?.into_secret()),
        None => Ok(SecretString::from(crate::domain::password::generate())),
    }
}

/// The spec of the store's primary, if the store can take the change now.
async fn primary(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<NodeSpec> {
    let store = db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::ChangeDatabases)?;
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await?;
    let p = nodes.iter().find(|n| n.role == NodeRole::Primary && n.state == NodeState::Running).ok_or_else(
        || Error::conflict("no_primary", "the store's primary is not running; repair the store"),
    )?;
    state
        .plane
        .node_spec(&state.db, ctx.org_id, store_id, p.id, state.clock.now())
        .await?
        .ok_or(Error::NotFound("store"))
}

/// The store's databases, read from its primary.
pub async fn list_databases(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<Vec<DatabaseInfo>> {
    let spec = primary(state, ctx, store_id).await?;
    Ok(sql::databases(state.plane.driver.as_ref(), &spec).await?)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// 1 to 63 of a-z, 0-9 and _, starting with a letter or _, and not starting with `pg_`.
    #[schema(example = "orders", pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub name: String,
}

/// Creates a database owned by the store's admin user; users of "all databases" to read or
/// write are granted it too.
pub async fn create_database(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &CreateDatabase,
) -> Result<DatabaseInfo> {
    let name = identifier("name", &cmd.name, &SYSTEM_DATABASES)?;
    let spec = primary(state, ctx, store_id).await?;
    let driver = state.plane.driver.as_ref();
    if sql::database_exists(driver, &spec, &name).await? {
        return Err(database_exists(&name));
    }
    sql::create_database(driver, &spec, &name).await.map_err(|e| e.or_exists(|| database_exists(&name)))?;
    for u in db::db_users::list(&state.db, ctx, store_id).await? {
        // Users of "all databases" to read or write get the new one too (admins own it).
        match Privilege::parse(&u.privilege) {
            Some(p @ (Privilege::Read | Privilege::Readwrite)) if u.database.is_none() => {
                sql::grant(driver, &spec, &u.name, p, Some(&name)).await?;
            }
            _ => {}
        }
    }
    Event::new("database.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("database", &name)
        .record(&state.db, state.clock.now())
        .await?;
    let info = sql::databases(driver, &spec).await?.into_iter().find(|d| d.name == name);
    Ok(info.ok_or_else(|| anyhow::anyhow!("database {name} vanished"))?)
}

/// Drops a database and everything in it, ending its sessions; refused while users are
/// granted it alone.
pub async fn drop_database(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    name: &str,
) -> Result<()> {
    customer_database("name", name)?;
    let spec = primary(state, ctx, store_id).await?;
    let driver = state.plane.driver.as_ref();
    if !sql::database_exists(driver, &spec, name).await? {
        return Err(Error::NotFound("database"));
    }
    let holders: Vec<String> = db::db_users::list(&state.db, ctx, store_id)
        .await?
        .into_iter()
        .filter(|u| u.database.as_deref() == Some(name))
        .map(|u| u.name)
        .collect();
    if !holders.is_empty() {
        return Err(Error::conflict(
            "database_in_use",
            format!("users {} are granted this database only; drop them first", holders.join(", ")),
        ));
    }
    sql::drop_database(driver, &spec, name).await?;
    Event::new("database.dropped", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("database", name)
        .record(&state.db, state.clock.now())
        .await?;
    Ok(())
}

/// The store's database users.
pub async fn list_users(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<Vec<DbUserRow>> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    Ok(db::db_users::list(&state.db, ctx, store_id).await?)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDbUser {
    /// As a database's name.
    #[schema(example = "app_reader", pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub username: String,
    /// 12 to 1024 characters. Left out: one is generated. Either way it is returned once and
    /// Berth does not keep it.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    #[serde(
        serialize_with = "crate::domain::password::serialize_exposed",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
    /// `read`, `readwrite` or `admin`.
    pub privileges: Privilege,
    /// One database; left out: all of them.
    #[schema(pattern = r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")]
    pub database: Option<String>,
    /// A network (CIDR or address) the user may connect from, within the firewall.
    pub host: Option<String>,
}

/// Creates a database user; returns its record and its password, which Berth does not keep.
/// The record commits only once the role exists on the primary; a host network is then
/// written into every node.
pub async fn create_user(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: CreateDbUser,
) -> Result<(DbUserRow, SecretString)> {
    let spec = primary(state, ctx, store_id).await?;
    let name = identifier("username", &cmd.username, &reserved_roles(&spec.admin_user))?;
    let password = password(cmd.password)?;
    let host = cmd.host.as_deref().map(Cidr::parse).transpose().map_err(|m| Error::field("host", m))?;
    let driver = state.plane.driver.as_ref();
    if let Some(d) = &cmd.database {
        customer_database("database", d)?;
        if !sql::database_exists(driver, &spec, d).await? {
            return Err(Error::field("database", format!("{d} does not exist in this store")));
        }
    }
    if db::db_users::get(&state.db, ctx, store_id, &name).await?.is_some() {
        return Err(db_user_exists(&name));
    }
    let row = DbUserRow {
        id: Uuid::now_v7(),
        name: name.clone(),
        privilege: cmd.privileges.as_str().into(),
        database: cmd.database.clone(),
        host: host.map(|h| h.net()),
        created_at: state.clock.now(),
    };
    // The record first, in a transaction that commits only once the role exists on the node.
    let mut tx = state.db.begin().await?;
    // A concurrent create of the same name waits here on the unique index for this one to end.
    db::db_users::insert(&mut *tx, ctx, store_id, &row)
        .await
        .map_err(|e| on_constraint(e, |c| (c == "db_users_name_key").then(|| db_user_exists(&name))))?;
    Event::new("db_user.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("user", &name)
        .detail("privilege", cmd.privileges)
        .detail("database", &cmd.database)
        .detail("host", host.map(|h| h.to_string()))
        .record_in(&mut tx, state.clock.now())
        .await?;
    sql::create_user(driver, &spec, &name, &password, cmd.privileges, cmd.database.as_deref())
        .await
        .map_err(|e| e.or_exists(|| db_user_exists(&name)))?;
    tx.commit().await?;
    if host.is_some() {
        access::apply(state, ctx, store_id).await?;
    }
    Ok((row, password))
}

/// Drops a database user; what it owned passes to the store's admin user.
pub async fn drop_user(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    name: &str,
) -> Result<()> {
    let spec = primary(state, ctx, store_id).await?;
    let mut tx = state.db.begin().await?;
    if !db::db_users::delete(&mut *tx, ctx, store_id, name).await? {
        return Err(Error::NotFound("database user"));
    }
    Event::new("db_user.dropped", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("user", name)
        .record_in(&mut tx, state.clock.now())
        .await?;
    sql::drop_user(state.plane.driver.as_ref(), &spec, name).await?;
    tx.commit().await?;
    access::apply(state, ctx, store_id).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RotatePassword {
    /// The new password (12 to 1024 characters); left out: one is generated.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    #[serde(
        serialize_with = "crate::domain::password::serialize_exposed",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
}

/// Gives a database user a new password, returned once; the old one stops working at once.
pub async fn rotate_password(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    name: &str,
    cmd: RotatePassword,
) -> Result<SecretString> {
    let spec = primary(state, ctx, store_id).await?;
    db::db_users::get(&state.db, ctx, store_id, name).await?.ok_or(Error::NotFound("database user"))?;
    let password = password(cmd.password)?;
    sql::set_password(state.plane.driver.as_ref(), &spec, name, &password).await?;
    Event::new("db_user.password_rotated", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("user", name)
        .record(&state.db, state.clock.now())
        .await?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(field: &str, raw: &str, reserved: &[&str]) -> String {
        match identifier(field, raw, reserved) {
            Err(Error::Invalid { errors, .. }) => {
                assert_eq!(errors[0].field, field);
                errors[0].message.clone()
            }
            other => panic!("{raw:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn identifiers_that_need_no_quoting_pass() {
        for ok in ["orders", "_tmp", "a", "app_reader2", &"x".repeat(63)] {
            assert_eq!(identifier("name", ok, &[]).unwrap(), ok);
        }
    }

    #[test]
    fn length_is_1_to_63_bytes() {
        refused("name", "", &[]);
        refused("name", &"x".repeat(64), &[]);
    }

    #[test]
    fn anything_that_would_need_quoting_is_refused() {
        for bad in ["Orders", "2fast", "my-db", "my db", "a\"b", "a;drop", "é", "a.b", "x'y", " a"] {
            refused("username", bad, &[]);
        }
    }

    #[test]
    fn reserved_and_pg_names_are_refused() {
        refused("name", "pg_catalog", &[]);
        let m = refused("name", "template1", &SYSTEM_DATABASES);
        assert_eq!(m, "template1 is reserved");
        let roles = reserved_roles("berth_admin");
        for r in ["berth_admin", crate::pg::SUPERUSER, "replicator", "postgres", "public"] {
            assert_eq!(refused("username", r, &roles), format!("{r} is reserved"));
        }
        assert!(identifier("username", "app", &roles).is_ok());
    }

    #[test]
    fn system_databases_are_not_the_customers() {
        for d in SYSTEM_DATABASES {
            assert!(matches!(customer_database("database", d), Err(Error::Invalid { .. })));
        }
        assert!(customer_database("database", "orders").is_ok());
    }

    #[test]
    fn a_generated_password_is_long_and_alphanumeric() {
        use secrecy::ExposeSecret;
        let p = password(None).unwrap();
        assert_eq!(p.expose_secret().len(), 32);
        assert!(p.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(matches!(password(Some("short".to_owned().into())), Err(Error::Invalid { .. })));
    }
}
