//! High availability on the local driver: probing a node's replication, promoting, fencing,
//! and bringing a former primary back as a standby (`pg_rewind`, or a fresh copy).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};

use super::{BASEBACKUP_TIMEOUT, LocalDriver, READY_TIMEOUT, REPLACED, REPLICATOR};
use crate::pg::Server;
use crate::provision::{Duty, Lsn, NodeSpec, Rejoined, Replication, StandbyLink, WalReceiver};

/// The failover monitor's probe: a node that does not answer within this is not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long each of the fast and the immediate shutdown of a fence may take.
const FENCE_STOP: Duration = Duration::from_secs(5);
/// How long a promoted node may take to leave recovery.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);

impl LocalDriver {
    pub(super) async fn probe_replication(&self, spec: &NodeSpec) -> anyhow::Result<Option<Replication>> {
        let server = self.existing_server(spec);
        let probe = async {
            let Ok(mut conn) = server.connect("postgres").await else { return Ok(None) };
            match read_replication(&mut conn).await {
                Ok(r) => {
                    let _ = conn.close().await;
                    Ok(Some(r))
                }
                // The server went away mid-probe: it does not answer.
                Err(e) if e.as_database_error().is_none() => Ok(None),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("probing the replication of node {}", spec.node_id))),
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe).await.unwrap_or(Ok(None))
    }

    pub(super) async fn promote_node(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        if server.postmaster_pid().is_some() {
            return self.promote_running(&server, spec).await;
        }
        anyhow::ensure!(
            spec.duty.is_primary(),
            "node {} does not run, and its spec does not make it the primary: starting it would not \
             promote it",
            spec.node_id
        );
        // A standby's data started as a primary is promoted (see `run_node`).
        crate::provision::Provisioner::start(self, spec).await
    }

    /// Whether the stopped node's data is a standby's (stopped, or crashed, in recovery).
    pub(super) async fn was_standby(&self, server: &Server) -> anyhow::Result<bool> {
        if !server.exists() || server.postmaster_pid().is_some() {
            return Ok(false);
        }
        let (state, _) = server.control_data().await?;
        Ok(state == "shut down in recovery" || state == "in archive recovery")
    }

    /// Starts a standby's data as a standby of nobody, and promotes it: without its standby.signal
    /// it would only recover from a crash and go on writing on the old timeline, which the old
    /// primary (and a rewind) could not tell apart from its own.
    pub(super) async fn start_and_promote(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        let waiting = NodeSpec { duty: Duty::Standby { upstream: None }, ..spec.clone() };
        self.start_configured(server, &waiting).await?;
        self.promote_running(server, spec).await
    }

    async fn promote_running(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        let mut conn = server.connect_when_ready("postgres", READY_TIMEOUT).await?;
        let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
        if recovering {
            let promoted: bool = sqlx::query_scalar("select pg_promote(true, $1)")
                .bind(PROMOTE_TIMEOUT.as_secs() as i32)
                .fetch_one(&mut conn)
                .await
                .with_context(|| format!("promoting node {}", spec.node_id))?;
            anyhow::ensure!(promoted, "node {} did not leave recovery within 60 s", spec.node_id);
            let deadline = Instant::now() + PROMOTE_TIMEOUT;
            while sqlx::query_scalar::<_, bool>("select pg_is_in_recovery()").fetch_one(&mut conn).await? {
                anyhow::ensure!(Instant::now() < deadline, "node {} is still in recovery", spec.node_id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::info!(store_id = %spec.store_id, node_id = %spec.node_id, "promoted node to primary");
        }
        // The new timeline reaches the control file with a checkpoint, which the promotion only
        // asks for: pg_rewind reads it there, and against a source that has not had it finds
        // both on the same timeline and rewinds nothing. (Every call: a retry after a crash in
        // between must not skip it.)
        sqlx::query("checkpoint").execute(&mut conn).await?;
        if spec.duty.is_primary() {
            // Its synchronous standbys, and no standby.signal left for the next start.
            self.configure(server, spec)?;
            sqlx::query("select pg_reload_conf()").execute(&mut conn).await?;
        }
        conn.close().await?;
        Ok(())
    }

    pub(super) async fn fence_node(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        if server.postmaster_pid().is_some() {
            for mode in ["fast", "immediate"] {
                match server.stop_within(mode, FENCE_STOP).await {
                    Ok(()) if server.postmaster_pid().is_none() => break,
                    Ok(()) => {}
                    Err(e) => tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id,
                        mode, error = %format!("{e:#}"), "fencing: the shutdown did not end the node"),
                }
            }
        }
        // The postmaster, if it is still there, and whatever a killed postmaster left working on
        // the data (its backends go on serving their sessions): all of it.
        let left = server.processes_in_data();
        if !left.is_empty() || server.postmaster_pid().is_some() {
            tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id, processes = left.len(),
                "fencing: killing what still works on the node's data");
        }
        server.kill_all(FENCE_STOP).await.with_context(|| format!("fencing node {}", spec.node_id))
    }

    pub(super) async fn checkpoint_of_stopped(&self, spec: &NodeSpec) -> anyhow::Result<Option<Lsn>> {
        let server = self.existing_server(spec);
        if !server.exists() || server.postmaster_pid().is_some() {
            return Ok(None);
        }
        // `pg_ctl stop` returns once the pid file is gone, which the postmaster removes just
        // before it exits: give its last moments (longer on a busy host) to pass.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.processes_in_data().is_empty() {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (state, checkpoint) = server.control_data().await?;
        if state != "shut down" && state != "shut down in recovery" {
            return Ok(None);
        }
        Lsn::parse(&checkpoint)
            .map(Some)
            .with_context(|| format!("pg_controldata printed an unreadable checkpoint {checkpoint:?}"))
    }

    pub(super) async fn rejoin_node(&self, spec: &NodeSpec, source: &NodeSpec) -> anyhow::Result<Rejoined> {
        anyhow::ensure!(
            !spec.duty.is_primary(),
            "node {} is to rejoin as a standby, but its spec makes it the primary",
            spec.node_id
        );
        self.fence_node(spec).await?;
        let server = self.prepared(spec).await?;
        self.same_major(spec, source)?;
        let rejoined = if !server.exists() {
            self.copy_from_primary(&server, spec, source).await?;
            Rejoined::Recloned
        } else {
            match self.rewind(&server, spec, source).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id,
                        source = %source.node_id, error = %format!("{e:#}"),
                        "pg_rewind failed; copying the node afresh from the new primary");
                    // Renamed first (a crash leaves it under the name `prepared` sweeps), removed
                    // before the copy: the volume may not hold both.
                    let trash =
                        server.pgdata.with_file_name(format!("{REPLACED}{}", uuid::Uuid::new_v4().simple()));
                    std::fs::rename(&server.pgdata, &trash)
                        .with_context(|| format!("setting {} aside", server.pgdata.display()))?;
                    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&trash))
                        .await?
                        .context("removing the data that could not be rewound")?;
                    self.copy_from_primary(&server, spec, source).await?;
                    Rejoined::Recloned
                }
            }
        };
        self.run_node(&server, spec).await?;
        tracing::info!(store_id = %spec.store_id, node_id = %spec.node_id, source = %source.node_id,
            how = ?rejoined, "rejoined as a standby");
        Ok(rejoined)
    }

    /// `pg_rewind` of the stopped node onto `source`, over the store's private socket folder
    /// (the two are nodes of one store: one OS user, one folder).
    async fn rewind(&self, server: &Server, spec: &NodeSpec, source: &NodeSpec) -> anyhow::Result<Rejoined> {
        // A crashed target is recovered in single-user mode first, which refuses standby mode;
        // the spec's signal files are written again once it is rewound.
        for signal in ["standby.signal", "recovery.signal"] {
            super::layout::ignore_not_found(std::fs::remove_file(server.pgdata.join(signal)))?;
        }
        let from = self.existing_server(source);
        let conninfo = format!(
            "host={} port={} user={} dbname=postgres",
            from.socket_dir.display(),
            from.port,
            crate::pg::SUPERUSER
        );
        let mut cmd = server.command("pg_rewind");
        cmd.arg(format!("--target-pgdata={}", server.pgdata.display()))
            .arg(format!("--source-server={conninfo}"))
            .env("LC_ALL", "C")
            .current_dir(server.pgdata.parent().context("data folder without a parent")?);
        if self.ephemeral {
            cmd.arg("--no-sync");
        }
        let out = crate::pg::run_for(cmd, "pg_rewind", BASEBACKUP_TIMEOUT).await.with_context(|| {
            format!("rewinding node {} of store {} onto node {}", spec.node_id, spec.store_id, source.node_id)
        })?;
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok(if said.contains("no rewind required") { Rejoined::AsIs } else { Rejoined::Rewound })
    }

    /// A standby and its upstream run the same major version.
    pub(super) fn same_major(&self, spec: &NodeSpec, primary: &NodeSpec) -> anyhow::Result<()> {
        let (own, theirs) =
            (self.binaries_for(&spec.version)?.major, self.binaries_for(&primary.version)?.major);
        if own != theirs {
            bail!(
                "a PostgreSQL {} replica cannot stream from a PostgreSQL {} primary",
                spec.version,
                primary.version
            );
        }
        Ok(())
    }

    /// Copies `primary` into the node's (absent) data folder with `pg_basebackup`, configured
    /// from `spec` before it gets the real name. Not started.
    pub(super) async fn copy_from_primary(
        &self,
        server: &Server,
        spec: &NodeSpec,
        primary: &NodeSpec,
    ) -> anyhow::Result<()> {
        let staging = server.fresh_staging()?;
        // A private store's replica copies from inside the VPC, where the primary listens.
        let host = primary.network.map_or_else(|| "127.0.0.1".to_owned(), |n| n.address.to_string());
        let mut cmd = server.networked_command("pg_basebackup");
        cmd.args(["-h", &host, "-p", &primary.port.to_string(), "-U", REPLICATOR, "-D"])
            .arg(&staging)
            .args(["-X", "stream", "-c", "fast"])
            .env("PGPASSWORD", spec.replication_password.expose_secret())
            .current_dir(server.pgdata.parent().context("data folder without a parent")?);
        if self.ephemeral {
            cmd.arg("--no-sync");
        }
        crate::pg::run_for(cmd, "pg_basebackup", BASEBACKUP_TIMEOUT).await.with_context(|| {
            format!(
                "copying node {} of store {} from the primary on port {}",
                spec.node_id, spec.store_id, primary.port
            )
        })?;
        // The copy carries the primary's configuration; where it streams from comes from `spec`.
        self.configure(&Server { pgdata: staging.clone(), ..server.clone() }, spec)?;
        server.put_in_place(&staging)
    }

    pub(super) async fn reconfigure_node(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.server(spec)?;
        if !server.exists() {
            return Ok(());
        }
        self.configure(&server, spec)?;
        // A node that does not run reads it when it starts.
        if server.postmaster_pid().is_some() {
            if let Ok(mut conn) = server.connect("postgres").await {
                let ok: bool = sqlx::query_scalar("select pg_reload_conf()").fetch_one(&mut conn).await?;
                anyhow::ensure!(ok, "pg_reload_conf() refused");
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// A row of `pg_stat_replication`.
#[derive(sqlx::FromRow)]
struct LinkRow {
    application_name: Option<String>,
    state: Option<String>,
    sync_state: Option<String>,
    flushed: Option<String>,
    replayed: Option<String>,
    lag: Option<f64>,
}

/// The row of `pg_stat_wal_receiver`.
#[derive(sqlx::FromRow)]
struct ReceiverRow {
    status: Option<String>,
    sender_host: Option<String>,
    sender_port: Option<i32>,
    received_tli: Option<i32>,
    silent_ms: Option<i64>,
}

async fn read_replication(conn: &mut PgConnection) -> sqlx::Result<Replication> {
    let lsn = |t: Option<String>| t.as_deref().and_then(Lsn::parse);
    let in_recovery: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut *conn).await?;
    if !in_recovery {
        let (written, segment): (String, String) =
            sqlx::query_as("select pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())")
                .fetch_one(&mut *conn)
                .await?;
        let standbys = sqlx::query_as::<_, LinkRow>(
            "select application_name, state, sync_state, flush_lsn::text as flushed, \
             replay_lsn::text as replayed, extract(epoch from replay_lag)::float8 as lag \
             from pg_stat_replication order by application_name",
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| StandbyLink {
            application_name: r.application_name.unwrap_or_default(),
            state: r.state.unwrap_or_default(),
            sync_state: r.sync_state.unwrap_or_default(),
            flushed: lsn(r.flushed),
            replayed: lsn(r.replayed),
            replay_lag_seconds: r.lag,
        })
        .collect();
        return Ok(Replication {
            in_recovery,
            timeline: segment.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok()).unwrap_or_default(),
            received: Lsn::parse(&written),
            replayed: None,
            last_replayed_at: None,
            receiver: None,
            standbys,
        });
    }
    let (received, replayed, last_replayed_at, checkpoint_tli): (
        Option<String>,
        Option<String>,
        Option<time::OffsetDateTime>,
        Option<i32>,
    ) = sqlx::query_as(
        "select pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
         pg_last_xact_replay_timestamp(), (select timeline_id from pg_control_checkpoint())",
    )
    .fetch_one(&mut *conn)
    .await?;
    let receiver = sqlx::query_as::<_, ReceiverRow>(
        "select status, sender_host, sender_port, received_tli, \
         (extract(epoch from clock_timestamp() - last_msg_receipt_time) * 1000)::int8 as silent_ms \
         from pg_stat_wal_receiver",
    )
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| WalReceiver {
        status: r.status.unwrap_or_default(),
        sender_host: r.sender_host,
        sender_port: r.sender_port.and_then(|p| u16::try_from(p).ok()),
        received_timeline: r.received_tli.and_then(|t| u32::try_from(t).ok()),
        silent_for: r.silent_ms.and_then(|ms| u64::try_from(ms).ok()).map(std::time::Duration::from_millis),
    });
    let timeline = receiver
        .as_ref()
        .and_then(|r| r.received_timeline)
        .filter(|&t| t > 0)
        .or_else(|| checkpoint_tli.and_then(|t| u32::try_from(t).ok()))
        .unwrap_or_default();
    Ok(Replication {
        in_recovery,
        timeline,
        received: lsn(received),
        replayed: lsn(replayed),
        last_replayed_at,
        receiver,
        standbys: vec![],
    })
}
