//! What a node's server is configured with: its settings, who may connect (`pg_hba.conf`), and
//! the roles and database every node of a store has.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Executor, PgConnection};

use super::layout::ignore_not_found;
use super::{LocalDriver, REPLICATOR};
use crate::pg::{EPHEMERAL, Server};
use crate::provision::sql::execute_formatted;
use crate::provision::{Duty, NodeSpec, Upstream};

impl LocalDriver {
    pub(super) fn configure(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        self.configure_with(server, spec, &[])
    }

    /// The node's configuration, plus `extra` settings last (they win), such as recovery targets.
    pub(super) fn configure_with(
        &self,
        server: &Server,
        spec: &NodeSpec,
        extra: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let s = &spec.settings;
        let listen = spec.network.map_or_else(|| "127.0.0.1".to_owned(), |n| n.address.to_string());
        let mut settings = vec![
            ("listen_addresses", listen),
            ("shared_buffers", format!("{}MB", s.shared_buffers_mb)),
            ("max_connections", s.max_connections.to_string()),
            ("work_mem", format!("{}MB", s.work_mem_mb)),
            ("password_encryption", "scram-sha-256".to_owned()),
            ("wal_level", "replica".to_owned()),
            ("max_wal_senders", "10".to_owned()),
            ("max_replication_slots", "10".to_owned()),
            ("hot_standby", "on".to_owned()),
            // pg_rewind needs hint bits logged; a standby that lags finds the WAL still there.
            ("wal_log_hints", "on".to_owned()),
            ("wal_keep_size", "256MB".to_owned()),
            // An idle primary sends a keepalive every half of this: the failover monitor tells a
            // replica that still hears from its primary from one whose receiver is stuck.
            ("wal_sender_timeout", "10s".to_owned()),
            ("recovery_target_timeline", "latest".to_owned()),
        ];
        match &spec.tls {
            Some(tls) => {
                server.write_file("server.crt", &tls.cert_pem)?;
                server.write_private_file("server.key", tls.key_pem.expose_secret())?;
                settings.extend([
                    ("ssl", "on".to_owned()),
                    ("ssl_cert_file", "server.crt".to_owned()),
                    ("ssl_key_file", "server.key".to_owned()),
                    ("ssl_min_protocol_version", "TLSv1.2".to_owned()),
                ]);
            }
            None => settings.push(("ssl", "off".to_owned())),
        }
        if let Some(dir) = &spec.wal_archive {
            self.wal_dir(server, dir)?;
            // Never overwrite an archived segment: a second writer is an error, not a silent loss.
            let d = dir.to_string_lossy().replace('\'', "");
            settings.extend([
                ("archive_mode", "on".to_owned()),
                ("archive_command", format!("test ! -f '{d}/%f' && cp '%p' '{d}/%f'")),
                ("archive_timeout", "60".to_owned()),
            ]);
        }
        match &spec.duty {
            Duty::Primary { synchronous_standby_names } => {
                settings.push(("synchronous_standby_names", synchronous_standby_names.clone()));
            }
            Duty::Standby { upstream } => {
                // Streaming only, never from the store's WAL archive: a node that was promoted
                // behind Berth's back archives its timeline there too, and a standby following
                // the `latest` timeline would take that one rather than its primary's. A standby
                // further behind than the primary's `wal_keep_size` is reinitialized.
                if let Some(u) = upstream {
                    settings.push(("primary_conninfo", primary_conninfo(spec, u)));
                }
            }
        }
        if self.ephemeral {
            // Full page writes stay: pg_rewind refuses a source without them.
            let kept = EPHEMERAL.into_iter().filter(|(k, _)| *k != "full_page_writes");
            settings.extend(kept.map(|(k, v)| (k, v.to_owned())));
        }
        if matches!(&spec.duty, Duty::Primary { synchronous_standby_names } if !synchronous_standby_names.is_empty())
        {
            // A synchronous store's commits wait for their standbys, whatever else said otherwise
            // (a throw-away test cluster's settings included).
            settings.push(("synchronous_commit", "on".to_owned()));
        }
        settings.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        server.write_config(&settings)?;
        strip_copied_recovery_settings(server)?;
        // The fencing rule: without `Duty::Primary` a node never starts read-write.
        if spec.duty.is_primary() {
            for signal in ["standby.signal", "recovery.signal"] {
                ignore_not_found(std::fs::remove_file(server.pgdata.join(signal)))
                    .with_context(|| format!("removing {signal}"))?;
            }
        } else {
            server.write_file("standby.signal", "")?;
        }
        server.write_file("pg_hba.conf", &hba_rules(spec))
    }
}

/// Where a standby streams from, as libpq reads it (values quoted: the password may hold anything).
fn primary_conninfo(spec: &NodeSpec, upstream: &Upstream) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    format!(
        "host={} port={} user={REPLICATOR} password={} application_name={} sslmode=prefer",
        q(&upstream.host),
        upstream.port,
        q(spec.replication_password.expose_secret()),
        q(&spec.node_id.to_string()),
    )
}

/// Settings of recovery that `ALTER SYSTEM`, a base backup (`-R`) or a rewind may have left in
/// `postgresql.auto.conf`, where they would win over Berth's: where a node streams from is
/// decided from its spec only. Every other line is kept.
fn strip_copied_recovery_settings(server: &Server) -> anyhow::Result<()> {
    const COPIED: [&str; 3] = ["primary_conninfo", "primary_slot_name", "restore_command"];
    let path = server.pgdata.join("postgresql.auto.conf");
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.with_context(|| format!("reading {}", path.display()))?,
    };
    let copied = |line: &str| {
        let key = line.split(['=', ' ', '\t']).next().unwrap_or_default();
        COPIED.iter().any(|c| key.eq_ignore_ascii_case(c))
    };
    if !text.lines().any(|l| copied(l.trim_start())) {
        return Ok(());
    }
    let kept: String = text.lines().filter(|l| !copied(l.trim_start())).map(|l| format!("{l}\n")).collect();
    server.write_file("postgresql.auto.conf", &kept)
}

/// Who may connect, and how. The one place client access is decided: Berth's superuser over
/// the private socket only, replication between the nodes (over the host's loopback, or inside
/// the VPC), and clients from the spec's access list. Anything else matches no line and is refused.
pub(super) fn hba_rules(spec: &NodeSpec) -> String {
    let (access, user_hosts) = (&spec.access, &spec.user_hosts);
    let replication = spec.network.map_or_else(|| "127.0.0.1/32".to_owned(), |n| n.network.cidr.to_string());
    let mut text = String::from(
        "# Written by Berth; edits are overwritten. Client lines: the store's firewall rules.\n",
    );
    text += "# TYPE  DATABASE     USER        ADDRESS        METHOD\n";
    text += &format!("local   all          {su}                       trust\n", su = crate::pg::SUPERUSER);
    text += &format!("local   replication  {su}                       trust\n", su = crate::pg::SUPERUSER);
    // The superuser has no password, but say it outright: never over TCP.
    text += &format!("host    all          {su}       all            reject\n", su = crate::pg::SUPERUSER);
    text += &format!("host    replication  {REPLICATOR}  {replication}   scram-sha-256\n");
    // A user restricted to a host network connects where it and a firewall rule overlap, and
    // nowhere else. User names are validated identifiers: nothing can be injected.
    for (user, host) in user_hosts {
        for net in access {
            let overlap = if net.contains(host) {
                Some(*host)
            } else if host.contains(net) {
                Some(*net)
            } else {
                None
            };
            if let Some(o) = overlap {
                text += &format!("host    all          {user}   {o}   scram-sha-256\n");
            }
        }
        text += &format!("host    all          {user}   all   reject\n");
    }
    for net in access {
        // An IpNet prints only digits, dots, colons and a prefix length: nothing can be injected.
        text += &format!("host    all          all         {net}   scram-sha-256\n");
    }
    text
}

/// Creates the role, or brings an existing one to these attributes and password (so a retry
/// after a crash, or a changed password, converges).
async fn ensure_role(
    conn: &mut PgConnection,
    name: &str,
    attributes: &str,
    password: &SecretString,
) -> anyhow::Result<()> {
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    let verb = if exists { "alter" } else { "create" };
    let template = format!("{verb} role %I with {attributes} password %L");
    execute_formatted(conn, &template, &[name, password.expose_secret()])
        .await
        .with_context(|| format!("{verb} role {name:?}"))
}

pub(super) async fn ensure_roles_and_database(
    conn: &mut PgConnection,
    spec: &NodeSpec,
) -> anyhow::Result<()> {
    // Statements carrying passwords must not reach the server log, even when they fail or are slow.
    conn.execute(
        "set log_statement = 'none'; set log_min_duration_statement = -1; \
         set log_min_error_statement = 'panic'",
    )
    .await?;
    ensure_role(
        conn,
        &spec.admin_user,
        "login createdb nocreaterole nosuperuser noreplication nobypassrls",
        &spec.admin_password,
    )
    .await?;
    ensure_role(conn, REPLICATOR, "login replication nosuperuser", &spec.replication_password).await?;
    let template = if crate::provision::sql::database_exists_on(conn, &spec.database).await? {
        "alter database %I owner to %I"
    } else {
        "create database %I owner %I"
    };
    execute_formatted(conn, template, &[&spec.database, &spec.admin_user])
        .await
        .with_context(|| format!("creating database {:?}", spec.database))
}
