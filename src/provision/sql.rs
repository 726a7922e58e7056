//! What Berth does inside a store's PostgreSQL, the same for every driver: databases, users and
//! their privileges, over the driver's superuser connection.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Digest;
use sqlx::{Executor, PgConnection};
use utoipa::ToSchema;

use super::error::{Error, Result};
use super::{NodeSpec, Provisioner};

/// A superuser connection to the node, or [`Error::Unreachable`]: what a request reports as the
/// node being out of reach, not as Berth's fault.
pub async fn connect(driver: &dyn Provisioner, spec: &NodeSpec, database: &str) -> Result<PgConnection> {
    driver.superuser(spec, database).await.map_err(|source| Error::Unreachable { node: spec.node_id, source })
}

/// Identifiers and literals cannot be bound as parameters in DDL: the server quotes them itself
/// with `format` (`%I`, `%L`), and the statement it returns is run without being prepared, cached
/// or logged, since it may carry a password.
pub async fn execute_formatted(conn: &mut PgConnection, template: &str, args: &[&str]) -> Result<()> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let sql: String = sqlx::query_scalar("select format($1, variadic $2::text[])")
        .bind(template)
        .bind(args)
        .fetch_one(&mut *conn)
        .await?;
    conn.execute(sql.as_str()).await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseInfo {
    pub name: String,
    pub owner: String,
    pub size_bytes: i64,
    /// Tables outside the system schemas.
    pub tables: i64,
}

/// The customer's databases (not `postgres` or the templates).
pub async fn databases(driver: &dyn Provisioner, spec: &NodeSpec) -> Result<Vec<DatabaseInfo>> {
    let mut conn = connect(driver, spec, "postgres").await?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "select datname, pg_get_userbyid(datdba), pg_database_size(oid) from pg_database
         where not datistemplate and datname <> 'postgres' order by datname",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, owner, size_bytes) in rows {
        let mut db = connect(driver, spec, &name).await?;
        let tables: i64 = sqlx::query_scalar(
            "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut db)
        .await?;
        out.push(DatabaseInfo { name, owner, size_bytes, tables });
    }
    Ok(out)
}

/// The databases every PostgreSQL server has: the server's and the templates, never the
/// customer's to create, drop or be granted.
pub const SYSTEM_DATABASES: [&str; 3] = ["postgres", "template0", "template1"];

/// Whether the store has a customer database of this name (a template database is not one).
pub async fn database_exists(driver: &dyn Provisioner, spec: &NodeSpec, name: &str) -> Result<bool> {
    database_exists_on(&mut connect(driver, spec, "postgres").await?, name).await
}

/// [`database_exists`] over a connection the caller holds.
pub async fn database_exists_on(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists(select 1 from pg_database where datname = $1 and not datistemplate)",
    )
    .bind(name)
    .fetch_one(conn)
    .await?)
}

/// A database owned by the store's admin role, closed to everyone else until granted.
pub async fn create_database(driver: &dyn Provisioner, spec: &NodeSpec, name: &str) -> Result<()> {
    let mut conn = connect(driver, spec, "postgres").await?;
    execute_formatted(&mut conn, "create database %I owner %I", &[name, &spec.admin_user]).await?;
    execute_formatted(&mut conn, "revoke connect, temporary on database %I from public", &[name]).await
}

pub async fn drop_database(driver: &dyn Provisioner, spec: &NodeSpec, name: &str) -> Result<()> {
    let mut conn = connect(driver, spec, "postgres").await?;
    execute_formatted(&mut conn, "drop database if exists %I with (force)", &[name]).await
}

/// What a user may do: `read`, `readwrite` or `admin`, on one database or (`None`) all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Read,
    Readwrite,
    Admin,
}

impl Privilege {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Readwrite => "readwrite",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => Self::Read,
            "readwrite" => Self::Readwrite,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

async fn customer_databases(driver: &dyn Provisioner, spec: &NodeSpec) -> Result<Vec<String>> {
    let mut conn = connect(driver, spec, "postgres").await?;
    Ok(sqlx::query_scalar(
        "select datname from pg_database where not datistemplate and datname <> 'postgres'",
    )
    .fetch_all(&mut conn)
    .await?)
}

/// Creates a login role with a password and grants it `privilege`.
pub async fn create_user(
    driver: &dyn Provisioner,
    spec: &NodeSpec,
    name: &str,
    password: &SecretString,
    privilege: Privilege,
    database: Option<&str>,
) -> Result<()> {
    let mut conn = connect(driver, spec, "postgres").await?;
    // A role left by an attempt that crashed before Berth recorded it is taken over.
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    let verb = if exists { "alter" } else { "create" };
    execute_formatted(
        &mut conn,
        &format!("{verb} role %I login nosuperuser nocreatedb nocreaterole noreplication password %L"),
        &[name, password.expose_secret()],
    )
    .await?;
    grant(driver, spec, name, privilege, database).await
}

/// Grants `privilege` on one database or (`None`) on every customer database there is now.
/// Nothing here hands out a predefined role that reaches beyond the customer's own objects:
/// `pg_read_all_data` would also read `pg_authid` (every role's password verifier), so reading
/// or writing "all databases" is granted database by database (and a database created later is
/// granted by [`grant`] with its name, see the databases route).
pub async fn grant(
    driver: &dyn Provisioner,
    spec: &NodeSpec,
    name: &str,
    privilege: Privilege,
    database: Option<&str>,
) -> Result<()> {
    let admin = spec.admin_user.as_str();
    match (privilege, database) {
        (Privilege::Admin, None) => {
            // A member of the store's admin role, with what it owns: every database.
            let mut postgres = connect(driver, spec, "postgres").await?;
            execute_formatted(&mut postgres, "grant %I to %I", &[admin, name]).await
        }
        (p, None) => {
            for db in customer_databases(driver, spec).await? {
                grant_in_database(driver, spec, name, p, &db).await?;
            }
            Ok(())
        }
        (p, Some(db)) => grant_in_database(driver, spec, name, p, db).await,
    }
}

async fn grant_in_database(
    driver: &dyn Provisioner,
    spec: &NodeSpec,
    name: &str,
    privilege: Privilege,
    db: &str,
) -> Result<()> {
    let admin = spec.admin_user.as_str();
    let mut postgres = connect(driver, spec, "postgres").await?;
    let all = if privilege == Privilege::Admin { "all" } else { "connect" };
    execute_formatted(&mut postgres, &format!("grant {all} on database %I to %I"), &[db, name]).await?;
    let mut conn = connect(driver, spec, db).await?;
    let (schema, tables, sequences) = match privilege {
        Privilege::Read => ("usage", "select", "select"),
        Privilege::Readwrite => {
            ("usage", "select, insert, update, delete, truncate", "usage, select, update")
        }
        Privilege::Admin => ("all", "all", "all"),
    };
    for (template, args) in [
        (format!("grant {schema} on schema public to %I"), vec![name]),
        (format!("grant {tables} on all tables in schema public to %I"), vec![name]),
        (format!("grant {sequences} on all sequences in schema public to %I"), vec![name]),
        (
            format!("alter default privileges for role %I in schema public grant {tables} on tables to %I"),
            vec![admin, name],
        ),
        (
            format!(
                "alter default privileges for role %I in schema public grant {sequences} on sequences to %I"
            ),
            vec![admin, name],
        ),
    ] {
        execute_formatted(&mut conn, &template, &args).await?;
    }
    Ok(())
}

pub async fn set_password(
    driver: &dyn Provisioner,
    spec: &NodeSpec,
    name: &str,
    password: &SecretString,
) -> Result<()> {
    let mut conn = connect(driver, spec, "postgres").await?;
    execute_formatted(&mut conn, "alter role %I password %L", &[name, password.expose_secret()]).await
}

/// Drops a role: what it owns goes to the store's admin role, its privileges are revoked in every
/// database, and its sessions end.
pub async fn drop_user(driver: &dyn Provisioner, spec: &NodeSpec, name: &str) -> Result<()> {
    let mut postgres = connect(driver, spec, "postgres").await?;
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(&mut postgres)
        .await?;
    if !exists {
        return Ok(());
    }
    let mut dbs = customer_databases(driver, spec).await?;
    dbs.push("postgres".into());
    for db in dbs {
        let mut conn = connect(driver, spec, &db).await?;
        execute_formatted(&mut conn, "reassign owned by %I to %I", &[name, &spec.admin_user]).await?;
        execute_formatted(&mut conn, "drop owned by %I", &[name]).await?;
    }
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1")
        .bind(name)
        .execute(&mut postgres)
        .await?;
    execute_formatted(&mut postgres, "drop role %I", &[name]).await
}

/// Predefined roles that reach past the customer's own objects: the server's files and programs
/// (a shell on the host), and every table, system catalogs included (`pg_authid` holds every
/// role's password verifier). No role of a store is ever a member of one.
const FORBIDDEN_ROLES: [&str; 5] = [
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_read_all_data",
    "pg_write_all_data",
];

/// Brings a primary to Berth's privilege model, whatever an earlier version of Berth (or an
/// attacker using one) left there. Idempotent, and run at every start of a primary:
/// - only Berth's own superuser is a superuser; only `replicator` may replicate;
/// - no role has CREATEROLE (on PostgreSQL 15 and older it lets a role grant itself any
///   predefined role): database users are made through the API;
/// - no role is a member of a `FORBIDDEN_ROLES` role; a member of `pg_read_all_data` or
///   `pg_write_all_data` (what "all databases" meant before) gets the same access database by
///   database instead;
/// - the store's admin role may see and signal the store's sessions (`pg_monitor`,
///   `pg_signal_backend`, which never reach a superuser's).
pub async fn enforce_privilege_model(driver: &dyn Provisioner, spec: &NodeSpec) -> anyhow::Result<()> {
    let mut postgres = connect(driver, spec, "postgres").await?;
    let escalated: Vec<String> = sqlx::query_scalar(
        "select rolname from pg_roles where rolname <> $1 and not rolname like 'pg\\_%'
         and (rolsuper or rolcreaterole or rolbypassrls or (rolreplication and rolname <> 'replicator'))",
    )
    .bind(crate::pg::SUPERUSER)
    .fetch_all(&mut postgres)
    .await?;
    for role in &escalated {
        tracing::warn!(store_id = %spec.store_id, %role, "taking superuser, CREATEROLE, BYPASSRLS and REPLICATION from a role");
        execute_formatted(
            &mut postgres,
            "alter role %I nosuperuser nocreaterole nobypassrls noreplication",
            &[role],
        )
        .await?;
    }
    let memberships: Vec<(String, String)> = sqlx::query_as(
        "select g.rolname, m.rolname from pg_auth_members a
         join pg_roles g on g.oid = a.roleid join pg_roles m on m.oid = a.member
         where g.rolname = any($1) and m.rolname <> $2",
    )
    .bind(&FORBIDDEN_ROLES[..])
    .bind(crate::pg::SUPERUSER)
    .fetch_all(&mut postgres)
    .await?;
    for (group, member) in &memberships {
        let replacement = match group.as_str() {
            "pg_read_all_data" => Some(Privilege::Read),
            "pg_write_all_data" => Some(Privilege::Readwrite),
            _ => None,
        };
        if let Some(p) = replacement {
            grant(driver, spec, member, p, None).await?;
        } else {
            tracing::warn!(store_id = %spec.store_id, role = %member, %group, "revoking a forbidden role");
        }
        execute_formatted(&mut postgres, "revoke %I from %I", &[group, member]).await?;
    }
    Ok(execute_formatted(&mut postgres, "grant pg_monitor, pg_signal_backend to %I", &[&spec.admin_user])
        .await?)
}

/// The databases a logical restore of `database` goes through: the one it restores into, and
/// the name the existing one steps aside under. The same for every attempt, so that a retry
/// after a crash finds what the last one left.
pub fn logical_restore_names(database: &str) -> (String, String) {
    let tag = &hex::encode(sha2::Sha256::digest(database.as_bytes()))[..16];
    (format!("berth_restore_{tag}"), format!("berth_replaced_{tag}"))
}

/// A database renamed, its sessions ended first (a rename needs it to have none); a client that
/// reconnects in between gets a few more tries.
async fn rename_database(conn: &mut PgConnection, from: &str, to: &str) -> anyhow::Result<()> {
    for attempt in 0.. {
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(from)
            .execute(&mut *conn)
            .await?;
        match execute_formatted(conn, "alter database %I rename to %I", &[from, to]).await {
            Err(e) if attempt < 5 => {
                tracing::debug!(error = %format!("{e:#}"), "renaming a database; again");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return Ok(other?),
        }
    }
    unreachable!()
}

/// Puts the complete restore `staging` in the place of `database`. The existing database steps
/// aside as `replaced` and is dropped last. Where an earlier attempt died half-way, `replaced` is
/// the original: a `database` beside it is that attempt's (complete) restore, replaced by this one.
pub async fn swap_in(
    conn: &mut PgConnection,
    database: &str,
    staging: &str,
    replaced: &str,
) -> anyhow::Result<()> {
    if database_exists_on(conn, database).await? {
        if database_exists_on(conn, replaced).await? {
            execute_formatted(conn, "drop database %I with (force)", &[database]).await?;
        } else {
            rename_database(conn, database, replaced).await?;
        }
    }
    rename_database(conn, staging, database).await?;
    Ok(execute_formatted(conn, "drop database if exists %I with (force)", &[replaced]).await?)
}

/// Where the node's `timeline` forked off the one before, from its timeline history file
/// (`pg_wal/<timeline>.history`, written by the promotion); `None` on timeline 1 or when the
/// file is gone.
pub async fn timeline_switch(conn: &mut PgConnection, timeline: u32) -> anyhow::Result<Option<super::Lsn>> {
    if timeline <= 1 {
        return Ok(None);
    }
    let file = format!("pg_wal/{timeline:08X}.history");
    let text: Option<String> = sqlx::query_scalar("select pg_read_file($1, 0, 1048576, true)")
        .bind(&file)
        .fetch_one(&mut *conn)
        .await?;
    Ok(text.as_deref().and_then(last_switch))
}

/// The switch point of the last line of a timeline history file: `<parent tli>\t<lsn>\t<reason>`.
fn last_switch(text: &str) -> Option<super::Lsn> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with('#'))?;
    super::Lsn::parse(line.split_whitespace().nth(1)?)
}

#[cfg(test)]
mod timeline_tests {
    #[test]
    fn the_last_switch_of_a_history_file_is_read() {
        let text =
            "1\t0/3000158\tno recovery target specified\n\n2\t0/5000060\tno recovery target specified\n";
        assert_eq!(super::last_switch(text), Some(crate::provision::Lsn(0x5000060)));
        assert_eq!(super::last_switch(""), None);
    }
}
